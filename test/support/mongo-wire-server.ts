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
  /** Sparse: documents without any of the key's fields are not in the index. */
  sparse: boolean;
  /** Kept and listed (TTL); this server never expires documents. */
  expireAfterSeconds?: number;
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
    readonly extra: Document = {},
  ) {
    super(message);
  }

  /** The error as MongoDB puts it in a reply or in writeErrors[]. */
  reply(): Document {
    return { code: this.code, codeName: this.codeName, errmsg: this.message, ...this.extra };
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

function indexed(doc: Document, index: IndexSpec): boolean {
  return !index.sparse || Object.keys(index.key).some((k) => getPath(doc, k) !== undefined);
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
      c = { docs: [], indexes: [{ name: '_id_', key: { _id: 1 }, unique: true, sparse: false }] };
      d.set(name, c);
    }
    return c;
  };

  const checkUnique = (db: string, name: string, c: Collection, doc: Document, except?: Document): void => {
    for (const index of c.indexes) {
      if (!index.unique || !indexed(doc, index)) continue;
      const k = keyOf(doc, index);
      const clash = c.docs.find((d) => d !== except && indexed(d, index) && keyOf(d, index) === k);
      if (clash) {
        const keyValue: Document = {};
        for (const f of Object.keys(index.key)) keyValue[f] = getPath(doc, f) ?? null;
        const dup = Object.entries(keyValue)
          .map(([f, v]) => `${f}: ${JSON.stringify(v)}`)
          .join(', ');
        throw new CommandError(
          11000,
          'DuplicateKey',
          `E11000 duplicate key error collection: ${db}.${name} index: ${index.name} dup key: { ${dup} }`,
          { keyPattern: index.key, keyValue },
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
      if (isOperatorValue(v)) continue;
      seed[k] = v;
    }
    return seed;
  };

  /** The document an update makes of `d` (a copy; `d` is left alone). */
  const modified = (d: Document, mod: Document): Document => {
    if (!isOperatorUpdate(mod)) return { ...mod, _id: d._id };
    const { $setOnInsert: _ignored, ...ops } = mod;
    const next = structuredCloneDoc(d);
    if (Object.keys(ops).length) applyUpdate(next, ops as never, undefined, undefined, { cloneMode: 'copy' });
    if (serializeForCompare({ _id: next._id }) !== serializeForCompare({ _id: d._id }))
      throw new CommandError(
        66,
        'ImmutableField',
        "Performing an update on the path '_id' would modify the immutable field '_id'",
      );
    return next;
  };

  /** The document an upsert inserts: the query's equality fields, then the update (with $setOnInsert). */
  const insertFromUpsert = (q: Document, mod: Document): Document => {
    let doc: Document;
    if (isOperatorUpdate(mod)) {
      const { $setOnInsert, ...ops } = mod;
      doc = upsertSeed(q);
      // An _id set on insert is the new document's (mingo refuses to $set _id; MongoDB allows it here).
      const onInsert: Document = { ...(($setOnInsert as Document | undefined) ?? {}) };
      const set: Document = { ...((ops.$set as Document | undefined) ?? {}) };
      for (const source of [set, onInsert]) {
        if (source._id !== undefined) {
          doc._id = source._id;
          delete source._id;
        }
      }
      if (ops.$set) ops.$set = set;
      if (Object.keys(ops).length)
        applyUpdate(doc, ops as never, undefined, undefined, { cloneMode: 'copy' });
      if (Object.keys(onInsert).length)
        applyUpdate(doc, { $set: onInsert } as never, undefined, undefined, { cloneMode: 'copy' });
    } else {
      // A replacement takes only the _id from the query (MongoDB's rule).
      doc = { ...(q._id !== undefined && !isOperatorValue(q._id) ? { _id: q._id } : {}), ...mod };
    }
    if (doc._id === undefined) doc = { _id: new ObjectId(), ...doc };
    return doc;
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
          sparse?: boolean;
          expireAfterSeconds?: number;
        }[]) {
          const idxName =
            spec.name ??
            Object.entries(spec.key)
              .map(([k, v]) => `${k}_${v}`)
              .join('_');
          const index: IndexSpec = {
            name: idxName,
            key: spec.key,
            unique: spec.unique === true,
            sparse: spec.sparse === true,
            ...(spec.expireAfterSeconds !== undefined ? { expireAfterSeconds: spec.expireAfterSeconds } : {}),
          };
          const existing = c.indexes.find((i) => i.name === idxName);
          if (existing) {
            // Same name, same definition: a no-op, as in MongoDB; a different one is an error.
            if (JSON.stringify(existing) === JSON.stringify(index)) continue;
            throw new CommandError(
              86,
              'IndexKeySpecsConflict',
              `An existing index has the same name as the requested index. Requested index: ${JSON.stringify(index)}, existing index: ${JSON.stringify(existing)}`,
            );
          }
          if (index.unique) {
            const seen = new Set<string>();
            for (const d of c.docs) {
              if (!indexed(d, index)) continue;
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
            ...(i.sparse ? { sparse: true } : {}),
            ...(i.expireAfterSeconds !== undefined ? { expireAfterSeconds: i.expireAfterSeconds } : {}),
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
            writeErrors.push({ index, ...err.reply() });
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
            const query = new Query(q);
            const matches = c.docs.filter((d) => query.test(d));
            const targets = u.multi ? matches : matches.slice(0, 1);
            if (targets.length === 0 && u.upsert) {
              const doc = insertFromUpsert(q, mod);
              checkUnique(db, target, c, doc);
              c.docs.push(doc);
              n += 1;
              upserted.push({ index, _id: doc._id });
              continue;
            }
            for (const d of targets) {
              const next = modified(d, mod);
              checkUnique(db, target, c, next, d);
              c.docs[c.docs.indexOf(d)] = next;
              n += 1;
              if (serializeForCompare(next) !== serializeForCompare(d)) nModified += 1;
            }
          } catch (err) {
            if (!(err instanceof CommandError)) throw err;
            writeErrors.push({ index, ...err.reply() });
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
      case 'findandmodify': {
        // findOneAndUpdate / findOneAndReplace / findOneAndDelete: one document, chosen by
        // query + sort, changed atomically (this server runs one command at a time).
        const c = coll(db, target);
        const q = (cmd.query as Document) ?? {};
        let cursor = new Query(q).find<Document>(c.docs);
        if (cmd.sort && Object.keys(cmd.sort as Document).length) cursor = cursor.sort(cmd.sort as never);
        const found = cursor.limit(1).all()[0];
        // mingo's cursor hands back the stored object itself: find it by identity.
        const current = found ? c.docs.find((d) => d === found) : undefined;
        const project = (d: Document | null | undefined): Document | null => {
          if (!d) return null;
          if (!cmd.fields || Object.keys(cmd.fields as Document).length === 0) return d;
          return new Query({}).find<Document>([d], cmd.fields as Document).all()[0] ?? null;
        };
        if (cmd.remove) {
          if (current) c.docs.splice(c.docs.indexOf(current), 1);
          return { lastErrorObject: { n: current ? 1 : 0 }, value: project(current), ok: 1 };
        }
        const mod = cmd.update as Document | undefined;
        if (!mod || typeof mod !== 'object' || Array.isArray(mod))
          throw new CommandError(9, 'FailedToParse', 'Either an update or remove=true must be specified');
        if (!current) {
          if (!cmd.upsert) return { lastErrorObject: { n: 0, updatedExisting: false }, value: null, ok: 1 };
          const doc = insertFromUpsert(q, mod);
          checkUnique(db, target, c, doc);
          c.docs.push(doc);
          return {
            lastErrorObject: { n: 1, updatedExisting: false, upserted: doc._id },
            value: cmd.new ? project(doc) : null,
            ok: 1,
          };
        }
        const next = modified(current, mod);
        checkUnique(db, target, c, next, current);
        c.docs[c.docs.indexOf(current)] = next;
        return {
          lastErrorObject: { n: 1, updatedExisting: true },
          value: project(cmd.new ? next : current),
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
      if (err instanceof CommandError) return { ok: 0, ...err.reply() };
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

function isOperatorUpdate(mod: Document): boolean {
  return Object.keys(mod).some((k) => k.startsWith('$'));
}

/** `{ $gt: 1 }` and the like (not a plain value to copy into an upserted document). */
function isOperatorValue(v: unknown): boolean {
  return (
    v !== null &&
    typeof v === 'object' &&
    !(v instanceof Date) &&
    !(v instanceof ObjectId) &&
    Object.keys(v as object).some((x) => x.startsWith('$'))
  );
}
