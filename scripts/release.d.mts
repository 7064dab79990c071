export const CLOUD_ONLY_PACKAGES: string[];
export class ReleaseError extends Error {}
export function makeRelease(options?: {
  arch?: string;
  nativeModules?: string;
  out?: string;
  build?: boolean;
  cloud?: boolean;
  log?: (line: string) => void;
}): Promise<{
  version: string;
  daemon: {
    file: string;
    sha256: string;
    unpackedBytes: number;
    modules: { name: string; version: string }[];
  };
  cloud?: { file: string; sha256: string };
}>;
