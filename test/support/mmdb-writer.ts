/**
 * A minimal MaxMind DB (.mmdb) writer for tests: IPv4 tree, 24-bit records, the data types
 * a City database uses (map, string, double, uint, array, boolean). Format:
 * https://maxmind.github.io/MaxMind-DB/ - search tree, 16 zero bytes, data section,
 * "\xAB\xCD\xEFMaxMind.com" + metadata map. Real databases (dbip-city-lite, GeoLite2-City)
 * are far too big to commit; this makes one with a handful of networks at test time.
 */
type Value =
  | string
  | number
  | boolean
  | Value[]
  | { [k: string]: Value }
  | { uint: number }
  | { double: number };

function ctrl(type: number, size: number): Buffer {
  const ext = type > 7;
  const head: number[] = [];
  let sizeBits: number;
  const extra: number[] = [];
  if (size < 29) sizeBits = size;
  else if (size < 285) {
    sizeBits = 29;
    extra.push(size - 29);
  } else if (size < 65_821) {
    sizeBits = 30;
    const s = size - 285;
    extra.push(s >> 8, s & 0xff);
  } else {
    sizeBits = 31;
    const s = size - 65_821;
    extra.push((s >> 16) & 0xff, (s >> 8) & 0xff, s & 0xff);
  }
  head.push(((ext ? 0 : type) << 5) | sizeBits);
  if (ext) head.push(type - 7);
  return Buffer.from([...head, ...extra]);
}

function uintBytes(n: number): Buffer {
  const bytes: number[] = [];
  let v = BigInt(n);
  while (v > 0n) {
    bytes.unshift(Number(v & 0xffn));
    v >>= 8n;
  }
  return Buffer.from(bytes);
}

export function encodeValue(v: Value): Buffer {
  if (typeof v === 'string') {
    const b = Buffer.from(v, 'utf8');
    return Buffer.concat([ctrl(2, b.length), b]);
  }
  if (typeof v === 'boolean') return ctrl(14, v ? 1 : 0);
  if (typeof v === 'number') {
    // Integers as uint32, the rest as double (what City databases use).
    if (Number.isInteger(v) && v >= 0 && v < 2 ** 32) return encodeValue({ uint: v });
    return encodeValue({ double: v });
  }
  if (Array.isArray(v)) return Buffer.concat([ctrl(11, v.length), ...v.map(encodeValue)]);
  if ('uint' in v && typeof v.uint === 'number' && Object.keys(v).length === 1) {
    const b = uintBytes(v.uint);
    return Buffer.concat([ctrl(v.uint < 2 ** 16 ? 5 : v.uint < 2 ** 32 ? 6 : 9, b.length), b]);
  }
  if ('double' in v && typeof v.double === 'number' && Object.keys(v).length === 1) {
    const b = Buffer.alloc(8);
    b.writeDoubleBE(v.double);
    return Buffer.concat([ctrl(3, 8), b]);
  }
  const entries = Object.entries(v as Record<string, Value>);
  return Buffer.concat([
    ctrl(7, entries.length),
    ...entries.flatMap(([k, x]) => [encodeValue(k), encodeValue(x)]),
  ]);
}

export interface MmdbNetwork {
  /** IPv4 CIDR, e.g. `127.0.0.0/8`. */
  cidr: string;
  data: Record<string, Value>;
}

type Rec = { node: number } | { data: number } | null;

export function writeMmdb(networks: MmdbNetwork[], databaseType = 'DBIP-City-Lite'): Buffer {
  const nodes: [Rec, Rec][] = [[null, null]];
  const dataParts: Buffer[] = [];
  let dataSize = 0;
  for (const n of networks) {
    const [ip, lenStr] = n.cidr.split('/') as [string, string];
    const len = Number(lenStr);
    const addr = ip.split('.').reduce((a, o) => (a << 8) + Number(o), 0) >>> 0;
    const encoded = encodeValue(n.data);
    const offset = dataSize;
    dataParts.push(encoded);
    dataSize += encoded.length;
    let node = 0;
    for (let i = 0; i < len; i++) {
      const bit = (addr >>> (31 - i)) & 1;
      if (i === len - 1) {
        nodes[node]![bit] = { data: offset };
        break;
      }
      const next = nodes[node]![bit];
      if (next && 'node' in next) node = next.node;
      else {
        nodes.push([null, null]);
        nodes[node]![bit] = { node: nodes.length - 1 };
        node = nodes.length - 1;
      }
    }
  }
  const nodeCount = nodes.length;
  const tree = Buffer.alloc(nodeCount * 6);
  const value = (r: Rec) => (r === null ? nodeCount : 'node' in r ? r.node : nodeCount + 16 + r.data);
  nodes.forEach(([l, r], i) => {
    tree.writeUIntBE(value(l), i * 6, 3);
    tree.writeUIntBE(value(r), i * 6 + 3, 3);
  });
  const metadata = encodeValue({
    binary_format_major_version: { uint: 2 },
    binary_format_minor_version: { uint: 0 },
    build_epoch: { uint: Math.floor(Date.now() / 1000) },
    database_type: databaseType,
    description: { en: 'Screamwatch test database' },
    ip_version: { uint: 4 },
    languages: ['en'],
    node_count: { uint: nodeCount },
    record_size: { uint: 24 },
  });
  return Buffer.concat([
    tree,
    Buffer.alloc(16),
    ...dataParts,
    Buffer.from([0xab, 0xcd, 0xef]),
    Buffer.from('MaxMind.com'),
    metadata,
  ]);
}

/** A City-format record, as dbip-city-lite / GeoLite2-City store it. */
export function cityRecord(
  city: string,
  country: string,
  iso: string,
  latitude: number,
  longitude: number,
  accuracyKm?: number,
): Record<string, Value> {
  return {
    city: { names: { en: city } },
    country: { iso_code: iso, names: { en: country } },
    location: {
      latitude: { double: latitude },
      longitude: { double: longitude },
      ...(accuracyKm ? { accuracy_radius: { uint: accuracyKm } } : {}),
    },
  };
}
