import { createServer, type Server, type Socket } from 'node:net';
import { type Document, deserialize, Long, ObjectId, serialize } from 'bson';
import { Aggregator, update as applyUpdate, Query } from 'mingo';

/**
 * A small MongoDB wire-protocol server for tests (MongoDB cannot be installed here): it
 * answers the OP_QUERY isMaster handshake and OP_MSG commands well enough for the official
 * driver's CRUD and index calls, keeps collections in memory, evaluates filters, sorts,
 * updates and aggregations with mingo, and honours unique indexes with E11000 errors.
 * Not a database: no persistence, transactions, getMore batching or auth.
 */

const OP_REPLY = 1;
const OP_QUERY = 2004;
const OP_MSG = 2013;
const MAX_WIRE_VERSION = 21; // MongoDB 7.0

interface IndexSpec {
  name: string;
  key: Record<string, number>;
  unique: boolean;
}

interface Collection {
  docs: Document[];
  indexes: IndexSpec[];
}

export interface MongoWireServer {
  /** mongodb://127.0.0.1:<port> */
  uri: string;
  port: number;
  /** Every command received, by name (for assertions on what the driver did). */
  commands: string[];
  databases: Map<string, Map<string, Collection>>;
  stop(): Promise<void>;
}

class CommandError extends Error {
  constructor(
    readonly code: number,
    readonly codeName: string,
    message: string,
  ) {
    super(message);
  }
}

function getPath(doc: Document, path: string): unknown {
  let v: unknown = doc;
  for (const p of path.split('.')) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Document)[p];
  }
  return v;
}

function keyOf(doc: Document, index: IndexSpec): string {
  return JSON.stringify(Object.keys(index.key).map((k) => getPath(doc, k) ?? null));
}

export async function startMongoWireServer(): Promise<MongoWireServer> {
  const databases = new Map<string, Map<string, Collection>>();
  const commands: string[] = [];
  const sockets = new Set<Socket>();
  let connectionId = 0;

  const coll = (db: string, name: string): Collection => {
    let d = databases.get(db);
    if (!d) {
      d = new Map();
      databases.set(db, d);
    }
    let c = d.get(name);
    if (!c) {
      c = { docs: [], indexes: [{ name: '_id_', key: { _id: 1 }, unique: true }] };
      d.set(name, c);
    }
    return c;
  };

  const checkUnique = (db: string, name: string, c: Collection, doc: Document, except?: Document): void => {
    for (const index of c.indexes) {
      if (!index.unique) continue;
      const k = keyOf(doc, index);
      const clash = c.docs.find((d) => d !== except && keyOf(d, index) === k);
      if (clash) {
        const dup = Object.keys(index.key)
          .map((f) => `${f}: ${JSON.stringify(getPath(doc, f) ?? null)}`)
          .join(', ');
        throw new CommandError(
          11000,
          'DuplicateKey',
          `E11000 duplicate key error collection: ${db}.${name} index: ${index.name} dup key: { ${dup} }`,
        );
      }
    }
  };

  const cursorReply = (db: string, name: string, batch: Document[]) => ({
    cursor: { firstBatch: batch, id: Long.fromNumber(0), ns: `${db}.${name}` },
    ok: 1,
  });

  const hello = () => ({
    helloOk: true,
    ismaster: true,
    isWritablePrimary: true,
    maxBsonObjectSize: 16 * 1024 * 1024,
    maxMessageSizeBytes: 48_000_000,
    maxWriteBatchSize: 100_000,
    localTime: new Date(),
    logicalSessionTimeoutMinutes: 30,
    connectionId,
    minWireVersion: 0,
    maxWireVersion: MAX_WIRE_VERSION,
    readOnly: false,
    ok: 1,
  });

  const upsertSeed = (q: Document): Document => {
    // The equality fields of the query become the new document's fields (as MongoDB does).
    const seed: Document = {};
    for (const [k, v] of Object.entries(q)) {
      if (k.startsWith('$') || k.includes('.')) continue;
      if (
        v !== null &&
        typeof v === 'object' &&
        !(v instanceof Date) &&
        !(v instanceof ObjectId) &&
        Object.keys(v).some((x) => x.startsWith('$'))
      )
        continue;
      seed[k] = v;
    }
    return seed;
  };

  const run = (cmd: Document): Document => {
    const name = Object.keys(cmd)[0] ?? '';
    commands.push(name);
    const db = (cmd.$db as string | undefined) ?? 'test';
    const target = cmd[name] as string;
    switch (name.toLowerCase()) {
      case 'hello':
      case 'ismaster':
        return hello();
      case 'ping':
      case 'endsessions':
      case 'killcursors':
        return { ok: 1 };
      case 'buildinfo':
        return { version: '7.0.0-wire-test', versionArray: [7, 0, 0, 0], ok: 1 };
      case 'createindexes': {
        const c = coll(db, target);
        const before = c.indexes.length;
        for (const spec of cmd.indexes as {
          key: Record<string, number>;
          name?: string;
          unique?: boolean;
        }[]) {
          const idxName =
            spec.name ??
            Object.entries(spec.key)
              .map(([k, v]) => `${k}_${v}`)
              .join('_');
          if (c.indexes.some((i) => i.name === idxName)) continue;
          const index = { name: idxName, key: spec.key, unique: spec.unique === true };
          if (index.unique) {
            const seen = new Set<string>();
            for (const d of c.docs) {
              const k = keyOf(d, index);
              if (seen.has(k))
                throw new CommandError(
                  11000,
                  'DuplicateKey',
                  `E11000 duplicate key error collection: ${db}.${target} index: ${idxName}`,
                );
              seen.add(k);
            }
          }
          c.indexes.push(index);
        }
        return {
          numIndexesBefore: before,
          numIndexesAfter: c.indexes.length,
          createdCollectionAutomatically: before === 1,
          ok: 1,
        };
      }
      case 'listindexes': {
        const c = coll(db, target);
        return cursorReply(
          db,
          target,
          c.indexes.map((i) => ({
            v: 2,
            key: i.key,
            name: i.name,
            ...(i.unique && i.name !== '_id_' ? { unique: true } : {}),
          })),
        );
      }
      case 'insert': {
        const c = coll(db, target);
        const docs = (cmd.documents as Document[]) ?? [];
        const writeErrors: Document[] = [];
        let n = 0;
        for (const [index, doc] of docs.entries()) {
          if (doc._id === undefined) doc._id = new ObjectId();
          try {
            checkUnique(db, target, c, doc);
            c.docs.push(doc);
            n += 1;
          } catch (err) {
            if (!(err instanceof CommandError)) throw err;
            writeErrors.push({ index, code: err.code, errmsg: err.message });
            if (cmd.ordered !== false) break;
          }
        }
        return writeErrors.length ? { n, writeErrors, ok: 1 } : { n, ok: 1 };
      }
      case 'update': {
        const c = coll(db, target);
        let n = 0;
        let nModified = 0;
        const upserted: Document[] = [];
        const writeErrors: Document[] = [];
        for (const [index, u] of ((cmd.updates as Document[]) ?? []).entries()) {
          try {
            const q = (u.q as Document) ?? {};
            const mod = (u.u as Document) ?? {};
            const isOperator = Object.keys(mod).some((k) => k.startsWith('$'));
            const { $setOnInsert, ...ops } = mod;
            const query = new Query(q);
            const matches = c.docs.filter((d) => query.test(d));
            const targets = u.multi ? matches : matches.slice(0, 1);
            if (targets.length === 0 && u.upsert) {
              let doc: Document;
              if (isOperator) {
                doc = upsertSeed(q);
                if (Object.keys(ops).length)
                  applyUpdate(doc, ops as never, undefined, undefined, { cloneMode: 'copy' });
                if ($setOnInsert)
                  applyUpdate(doc, { $set: $setOnInsert } as never, undefined, undefined, {
                    cloneMode: 'copy',
                  });
              } else {
                doc = { ...upsertSeed(q), ...mod };
              }
              if (doc._id === undefined) doc._id = new ObjectId();
              checkUnique(db, target, c, doc);
              c.docs.push(doc);
              n += 1;
              upserted.push({ index, _id: doc._id });
              continue;
            }
            for (const d of targets) {
              const next: Document = isOperator ? structuredCloneDoc(d) : { _id: d._id, ...mod };
              if (isOperator && Object.keys(ops).length)
                applyUpdate(next, ops as never, undefined, undefined, { cloneMode: 'copy' });
              checkUnique(db, target, c, next, d);
              const changed =
                JSON.stringify(serializeForCompare(next)) !== JSON.stringify(serializeForCompare(d));
              c.docs[c.docs.indexOf(d)] = next;
              n += 1;
              if (changed) nModified += 1;
            }
          } catch (err) {
            if (!(err instanceof CommandError)) throw err;
            writeErrors.push({ index, code: err.code, errmsg: err.message });
            if (cmd.ordered !== false) break;
          }
        }
        return {
          n,
          nModified,
          ...(upserted.length ? { upserted } : {}),
          ...(writeErrors.length ? { writeErrors } : {}),
          ok: 1,
        };
      }
      case 'delete': {
        const c = coll(db, target);
        let n = 0;
        for (const d of (cmd.deletes as Document[]) ?? []) {
          const query = new Query((d.q as Document) ?? {});
          const limit = d.limit === 1 ? 1 : Number.POSITIVE_INFINITY;
          const keep: Document[] = [];
          for (const doc of c.docs) {
            if (n < limit && query.test(doc)) n += 1;
            else keep.push(doc);
          }
          c.docs = keep;
        }
        return { n, ok: 1 };
      }
      case 'find': {
        const c = coll(db, target);
        let cursor = new Query((cmd.filter as Document) ?? {}).find<Document>(
          c.docs,
          (cmd.projection as Document) ?? undefined,
        );
        if (cmd.sort && Object.keys(cmd.sort as Document).length) cursor = cursor.sort(cmd.sort as never);
        if (typeof cmd.skip === 'number' && cmd.skip > 0) cursor = cursor.skip(cmd.skip);
        const limit = typeof cmd.limit === 'number' ? cmd.limit : Number(cmd.limit ?? 0);
        if (limit > 0) cursor = cursor.limit(limit);
        return cursorReply(db, target, cursor.all());
      }
      case 'aggregate': {
        const c = coll(db, target);
        return cursorReply(db, target, new Aggregator(cmd.pipeline as Document[]).run(c.docs) as Document[]);
      }
      case 'count': {
        const c = coll(db, target);
        return { n: new Query((cmd.query as Document) ?? {}).find(c.docs).all().length, ok: 1 };
      }
      case 'drop': {
        databases.get(db)?.delete(target);
        return { ok: 1 };
      }
      case 'dropdatabase':
        databases.delete(db);
        return { ok: 1 };
      default:
        throw new CommandError(59, 'CommandNotFound', `no such command: '${name}'`);
    }
  };

  const safeRun = (cmd: Document): Document => {
    try {
      return run(cmd);
    } catch (err) {
      if (err instanceof CommandError)
        return { ok: 0, errmsg: err.message, code: err.code, codeName: err.codeName };
      return { ok: 0, errmsg: (err as Error).message, code: 8000, codeName: 'InternalError' };
    }
  };

  const header = (length: number, requestId: number, responseTo: number, opCode: number): Buffer => {
    const h = Buffer.alloc(16);
    h.writeInt32LE(length, 0);
    h.writeInt32LE(requestId, 4);
    h.writeInt32LE(responseTo, 8);
    h.writeInt32LE(opCode, 12);
    return h;
  };

  let replyId = 1;
  const replyMsg = (responseTo: number, doc: Document): Buffer => {
    const body = serialize(doc);
    const flags = Buffer.alloc(5); // flagBits (0) + section kind 0
    return Buffer.concat([
      header(16 + flags.length + body.length, replyId++, responseTo, OP_MSG),
      flags,
      body,
    ]);
  };
  const replyLegacy = (responseTo: number, doc: Document): Buffer => {
    const body = serialize(doc);
    const fixed = Buffer.alloc(20); // responseFlags, cursorID (8), startingFrom, numberReturned
    fixed.writeInt32LE(1, 16);
    return Buffer.concat([
      header(16 + fixed.length + body.length, replyId++, responseTo, OP_REPLY),
      fixed,
      body,
    ]);
  };

  const handleMessage = (socket: Socket, msg: Buffer): void => {
    const requestId = msg.readInt32LE(4);
    const opCode = msg.readInt32LE(12);
    if (opCode === OP_QUERY) {
      let at = 20;
      while (msg[at] !== 0) at += 1;
      const ns = msg.toString('utf8', 20, at);
      at += 1 + 8; // skip NUL, numberToSkip, numberToReturn
      const len = msg.readInt32LE(at);
      const query = deserialize(msg.subarray(at, at + len));
      const cmd = ns.endsWith('.$cmd') ? { ...query, $db: ns.slice(0, -5) } : query;
      socket.write(replyLegacy(requestId, safeRun(cmd)));
      return;
    }
    if (opCode !== OP_MSG) {
      socket.destroy();
      return;
    }
    const flags = msg.readUInt32LE(16);
    const end = flags & 1 ? msg.length - 4 : msg.length; // checksumPresent
    let at = 20;
    let cmd: Document = {};
    while (at < end) {
      const kind = msg[at]!;
      at += 1;
      if (kind === 0) {
        const len = msg.readInt32LE(at);
        cmd = { ...deserialize(msg.subarray(at, at + len)), ...cmd };
        at += len;
      } else {
        const size = msg.readInt32LE(at);
        const stop = at + size;
        let p = at + 4;
        while (msg[p] !== 0) p += 1;
        const id = msg.toString('utf8', at + 4, p);
        p += 1;
        const docs: Document[] = [];
        while (p < stop) {
          const len = msg.readInt32LE(p);
          docs.push(deserialize(msg.subarray(p, p + len)));
          p += len;
        }
        cmd[id] = docs;
        at = stop;
      }
    }
    // moreToCome (bit 1): the client expects no reply.
    const reply = safeRun(cmd);
    if (!(flags & 2)) socket.write(replyMsg(requestId, reply));
  };

  const server: Server = createServer((socket) => {
    sockets.add(socket);
    connectionId += 1;
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buf: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      while (buf.length >= 4) {
        const len = buf.readInt32LE(0);
        if (buf.length < len) break;
        const msg = buf.subarray(0, len);
        buf = buf.subarray(len);
        try {
          handleMessage(socket, msg);
        } catch {
          socket.destroy();
          return;
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    uri: `mongodb://127.0.0.1:${port}`,
    port,
    commands,
    databases,
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function structuredCloneDoc(d: Document): Document {
  return deserialize(serialize(d));
}

function serializeForCompare(d: Document): string {
  return Buffer.from(serialize(d)).toString('base64');
}
