// The detection core: pure computation shared by the daemon, the cloud, the CLI and the
// browser. Node-only I/O (file decoding, model loading from disk) lives in core/audio/decode.ts
// and core/model/load.ts, which this index does not pull into a browser bundle.
export * from './audio/errors.ts';
export * from './audio/resample.ts';
export * from './audio/wav.ts';
export * from './detect/analyze.ts';
export * from './detect/confirmer.ts';
export * from './detect/detector.ts';
export * from './features/frame-features.ts';
export * from './features/window-features.ts';
export * from './features/window-stream.ts';
export * from './model/scream-model.ts';
