#!/usr/bin/env node
/*
 * Turnout's local Cosmos DB for NoSQL API server, for tests.
 *
 *   node scripts/cosmos-server/launch.js PORT [--http|--https]
 *
 * Runs @vercel/cosmosdb-server (pinned in package.json, installed into ./node_modules by
 * `npm ci --ignore-scripts`) bound to 127.0.0.1:PORT only, HTTPS with the package's bundled
 * self-signed certificate by default, or plain HTTP with --http. Prints exactly one line
 * "listening on 127.0.0.1:PORT" on stdout when ready. All data is in memory.
 *
 * The package is patched here at start-up, by replacing functions on its module objects;
 * nothing under node_modules is edited. The patches:
 *   keep-alive      connections stay open (the package answers "connection: close" by default)
 *   endpoints       the account advertises the scheme it is really served on (http:// with
 *                   --http), so the Python SDK's endpoint discovery works in both modes
 *   404             a point read of a missing item answers 404 NotFound (the package throws a
 *                   TypeError there, i.e. HTTP 500); delete/replace/patch of a missing item
 *                   answer 404 with code NotFound
 *   partition key   items are indexed by (full partition key, id): the package keyed only the
 *                   first component of a hierarchical key, so ("t1","a")/x and ("t1","b")/x
 *                   collided; null, missing, "" and 0 keys are told apart as Cosmos does
 *   queries         the query compiler's output built its working arrays with `[...acc, x]`
 *                   inside reduce(), i.e. O(n^2) per query; rewritten to push (O(n)); the
 *                   result post-processing (stripUndefined) made linear too; with a
 *                   continuation, the filtered/sorted row set of the previous page is reused
 *                   while the container is unchanged, so a paged full read is ~O(n) overall
 *   query scope     a query sent with a partition key (header) is confined to that partition
 *                   (the package ignored the header and answered 400 "missing partition keys"
 *                   unless the SQL itself filtered on the key); hierarchical-key prefixes and
 *                   feed ranges (x-ms-start-epk/x-ms-end-epk) are served by computing Cosmos'
 *                   effective partition keys (MurmurHash3, Hash V2 and MultiHash)
 *   SQL             LIKE, SELECT DISTINCT [TOP n] (top level), GROUP BY (select items that
 *                   are grouping expressions or single COUNT/SUM/AVG/MIN/MAX calls) and a
 *                   trailing OFFSET n LIMIT m, which the package's parser rejects, are handled
 *                   by rewriting the query text and finishing the rows here
 *   batch           transactional batch takes the partition key from the request header
 *                   (the Python SDK sends it there), supports Patch, is atomic (all changes
 *                   rolled back when one operation fails, the others answer 424, HTTP 207)
 *   change feed     latest-version change feed (A-IM: Incremental feed) with etag/LSN
 *                   continuations, start from beginning / now / a point in time, scoped by
 *                   partition key or feed range (the package returned everything, then 304)
 *   throughput      /offers: query, read and replace (in memory; never enforced)
 *   containers      replacing a container keeps its items (the package dropped them all)
 *   TTL             defaultTtl / item ttl honoured by a sweep every second (the package ignored it)
 *   pk delete       delete_all_items_by_partition_key (.../operations/partitionkeydelete)
 *   functions       StringEquals, GetCurrentDateTime/Timestamp/Ticks, StringToNumber,
 *                   StringToBoolean, IIF, IS_FINITE_NUMBER, ARRAY_CONTAINS_ANY/ALL added
 *   faults          test hook: POST /_turnout/faults {"status":429,"count":3,"retryAfterMs":5,
 *                   "path":"/docs"} makes the next `count` requests whose path contains `path`
 *                   answer `status` (with x-ms-retry-after-ms and x-ms-substatus 3200 for 429);
 *                   DELETE /_turnout/faults clears it. The server never throttles by itself.
 *
 * Debugging: COSMOS_LAUNCH_DEBUG=1 logs each request line and x-ms-* headers to stderr.
 */
"use strict";

const path = require("path");

// ---------------------------------------------------------------------------------------------
// arguments

const argv = process.argv.slice(2);
let port = null;
let scheme = "https";
for (const a of argv) {
  if (a === "--http") scheme = "http";
  else if (a === "--https") scheme = "https";
  else if (/^\d+$/.test(a)) port = parseInt(a, 10);
  else {
    process.stderr.write(`usage: launch.js PORT [--http|--https] (unknown argument ${a})\n`);
    process.exit(2);
  }
}
if (port === null || port < 0 || port > 65535) {
  process.stderr.write("usage: launch.js PORT [--http|--https]\n");
  process.exit(2);
}
const HOST = "127.0.0.1";

// ---------------------------------------------------------------------------------------------
// locate the package's modules (required by absolute path so that every patch lands on the
// very module objects the server itself uses)

const pkgDir = path.dirname(
  require.resolve("@vercel/cosmosdb-server/package.json", { paths: [__dirname] })
);
const pkgVersion = require(path.join(pkgDir, "package.json")).version;
if (pkgVersion !== "1.0.1") {
  process.stderr.write(
    `launch.js: patches are written for @vercel/cosmosdb-server 1.0.1, found ${pkgVersion}\n`
  );
  process.exit(1);
}
const lib = rel => require(path.join(pkgDir, "lib", rel));
const queryDir = path.dirname(
  require.resolve("@zeit/cosmosdb-query/package.json", { paths: [pkgDir] })
);
const qlib = rel => require(path.join(queryDir, "lib", rel));

const NOT_FOUND = {
  code: "NotFound",
  message: "Entity with the specified id does not exist in the system."
};

// ---------------------------------------------------------------------------------------------
// query engine: linear-time code generation and result stripping

const helpers = qlib("helpers");
const transformer = qlib("transformer").default;
const generator = require(require.resolve("@babel/generator", { paths: [queryDir] })).default;
const cosmosQuery = qlib("index");

helpers.__append = (acc, ...parts) => {
  for (let i = 0; i < parts.length; i += 1) {
    for (const v of parts[i]) acc.push(v);
  }
  return acc;
};

function stripUndefined(obj) {
  if (Array.isArray(obj)) {
    const out = [];
    for (let i = 0; i < obj.length; i += 1) {
      const v = obj[i];
      if (typeof v !== "undefined") out.push(stripUndefined(v));
    }
    return out;
  }
  if (obj && typeof obj === "object") {
    const out = {};
    const keys = Object.keys(obj);
    for (let i = 0; i < keys.length; i += 1) {
      const v = obj[keys[i]];
      if (typeof v !== "undefined") out[keys[i]] = stripUndefined(v);
    }
    return out;
  }
  return obj;
}
helpers.stripUndefined = stripUndefined;

// paginate() with a fast path: the position of every continuation token it hands out is
// remembered per row set, so the next page of a memoised row set starts without a scan. Otherwise
// identical to the package's helpers.paginate (same tokens, same fallback scan).
const continuationToken = qlib("continuation-token");
const TYPE_ORDERS = ["undefined", "null", "boolean", "number", "string", "array", "object"];
const typeOf = v => {
  const t = typeof v;
  if (t !== "object") return t;
  if (v === null) return "null";
  return Array.isArray(v) ? "array" : t;
};
const comparator = (a, b) => {
  if (a === b) return 0;
  const aType = typeOf(a);
  const bType = typeOf(b);
  if (aType === bType) {
    if (aType === "object") return 0;
    return a < b ? -1 : 1;
  }
  for (let i = 0; i < TYPE_ORDERS.length; i += 1) {
    if (aType === TYPE_ORDERS[i]) return -1;
    if (bType === TYPE_ORDERS[i]) return 1;
  }
  return 0;
};
const getPathValue = (doc, keys) => {
  let v = doc;
  for (let i = 0; i < keys.length; i += 1) {
    v = typeof v === "object" && v ? v[keys[i]] : undefined;
    if (typeof v === "undefined") return undefined;
  }
  return v;
};
const tokenPositions = new WeakMap(); // row set -> Map(token -> index)
helpers.paginate = (collection, maxItemCount, continuation, getRid, ...orders) => {
  let token;
  let offset = 0;
  if (continuation) {
    const known = tokenPositions.get(collection);
    let index = known ? known.get(continuation.token) : undefined;
    token = continuationToken.decode(continuation.token);
    if (index === undefined) {
      index = -1;
      let src = 0;
      for (let k = 0; k < collection.length && index < 0; k += 1) {
        const d = collection[k][1];
        let decided = null;
        if (typeof token.RTD !== "undefined" && orders.length) {
          for (let i = 0; i < orders.length; i += 1) {
            const [keys, desc] = orders[i];
            const r = comparator(getPathValue(d, keys), token.RTD[i]) * (desc ? -1 : 1);
            if (r < 0) {
              decided = false;
              break;
            }
            if (r > 0) {
              decided = true;
              break;
            }
          }
        }
        if (decided === null) {
          const rid = getRid(d);
          if (!rid) throw new Error("The _rid field is required on items for the continuation option.");
          if (comparator(rid, token.RID) < 0) decided = false;
          else if (!token.SRC || rid !== token.RID) decided = true;
          else if (src === token.SRC) decided = true;
          else {
            src += 1;
            decided = false;
          }
        }
        if (decided) index = k;
      }
      if (index < 0) index = collection.length;
    }
    offset = index;
  }
  let nextContinuation = null;
  let end = collection.length;
  if (maxItemCount > 0) {
    if (collection.length - offset > maxItemCount) {
      const item = collection[offset + maxItemCount][1];
      const RID = getRid(item);
      if (!RID) throw new Error("The _rid field is required on items for the maxItemCount option.");
      const RT = (token ? token.RT : 0) + 1;
      const TRC = (token ? token.TRC : 0) + maxItemCount;
      const RTD = orders.length ? orders.map(([keys]) => getPathValue(item, keys)) : undefined;
      let j = offset + maxItemCount - 1;
      for (; j >= 0; j -= 1) {
        if (getRid(collection[j][1]) !== RID) break;
      }
      const SRC = offset + maxItemCount - j - 1;
      const nextToken = continuationToken.encode({ RID, RT, SRC, TRC, RTD });
      let positions = tokenPositions.get(collection);
      if (!positions) {
        positions = new Map();
        tokenPositions.set(collection, positions);
      }
      positions.set(nextToken, offset + maxItemCount);
      nextContinuation = { token: nextToken, range: { min: "", max: "FF" } };
    }
    end = Math.min(collection.length, offset + maxItemCount);
  }
  const page = [];
  for (let k = offset; k < end; k += 1) page.push(collection[k][0]);
  return { result: stripUndefined(page), continuation: nextContinuation };
};

// Memo of the row set handed to paginate(): keyed by the Items instance (+ its write version),
// the SQL text and the parameters; set by the patched Items.query just before exec().
let memoKey = null;
const memo = new Map(); // key -> rows, at most MEMO_MAX entries, oldest dropped first
const MEMO_MAX = 16;
helpers.__memo = thunk => {
  if (memoKey === null) return thunk();
  const hit = memo.get(memoKey);
  if (hit) return hit;
  const rows = thunk();
  memo.set(memoKey, rows);
  while (memo.size > MEMO_MAX) memo.delete(memo.keys().next().value);
  return rows;
};

function id(name) {
  return { type: "Identifier", name };
}
function member(obj, prop) {
  return { type: "MemberExpression", object: id(obj), property: id(prop), computed: false };
}

// `[...acc, a, b, ...xs]` in a tail position of a reduce((acc, ...) => ..., []) callback
// becomes `$h.__append(acc, [a, b], xs)`: the accumulator starts as a fresh [] literal, so
// mutating it is unobservable.
function rewriteTail(expr, acc) {
  if (!expr) return expr;
  if (expr.type === "ConditionalExpression") {
    expr.consequent = rewriteTail(expr.consequent, acc);
    expr.alternate = rewriteTail(expr.alternate, acc);
    return expr;
  }
  if (
    expr.type === "ArrayExpression" &&
    expr.elements.length > 0 &&
    expr.elements[0] &&
    expr.elements[0].type === "SpreadElement" &&
    expr.elements[0].argument.type === "Identifier" &&
    expr.elements[0].argument.name === acc
  ) {
    const parts = [];
    let group = null;
    for (const el of expr.elements.slice(1)) {
      if (el && el.type === "SpreadElement") {
        group = null;
        parts.push(el.argument);
      } else {
        if (!group) {
          group = { type: "ArrayExpression", elements: [] };
          parts.push(group);
        }
        group.elements.push(el);
      }
    }
    return { type: "CallExpression", callee: member("$h", "__append"), arguments: [id(acc), ...parts] };
  }
  return expr;
}

function rewriteAst(node) {
  if (Array.isArray(node)) {
    node.forEach(rewriteAst);
    return;
  }
  if (!node || typeof node !== "object" || typeof node.type !== "string") return;
  for (const key of Object.keys(node)) {
    const v = node[key];
    if (v && typeof v === "object") rewriteAst(v);
  }
  if (
    node.type === "CallExpression" &&
    node.callee &&
    node.callee.type === "MemberExpression" &&
    !node.callee.computed &&
    node.callee.property.name === "reduce" &&
    node.arguments.length === 2 &&
    node.arguments[1].type === "ArrayExpression" &&
    node.arguments[1].elements.length === 0
  ) {
    const fn = node.arguments[0];
    if (
      (fn.type === "ArrowFunctionExpression" || fn.type === "FunctionExpression") &&
      fn.params[0] &&
      fn.params[0].type === "Identifier" &&
      fn.body.type !== "BlockStatement"
    ) {
      fn.body = rewriteTail(fn.body, fn.params[0].name);
    }
  }
}

// The top-level `return $h.paginate(ROWS, ...)` becomes `return $h.paginate($h.__memo(() => ROWS), ...)`.
function memoizePaginate(program) {
  const fn = program.type === "File" ? program.program : program;
  const visit = node => {
    if (!node || typeof node !== "object") return false;
    if (
      node.type === "CallExpression" &&
      node.callee.type === "MemberExpression" &&
      node.callee.object.type === "Identifier" &&
      node.callee.object.name === "$h" &&
      node.callee.property.name === "paginate"
    ) {
      node.arguments[0] = {
        type: "CallExpression",
        callee: member("$h", "__memo"),
        arguments: [
          { type: "ArrowFunctionExpression", params: [], body: node.arguments[0], expression: true }
        ]
      };
      return true;
    }
    for (const key of Object.keys(node)) {
      const v = node[key];
      if (Array.isArray(v)) {
        for (const x of v) if (visit(x)) return true;
      } else if (v && typeof v === "object" && typeof v.type === "string") {
        if (visit(v)) return true;
      }
    }
    return false;
  };
  visit(fn);
}

{
  const proto = Object.getPrototypeOf(cosmosQuery.default("SELECT * FROM c"));
  Object.defineProperty(proto, "code", {
    configurable: true,
    get() {
      if (!this._code) {
        const jsAst = transformer(this.ast);
        rewriteAst(jsAst);
        memoizePaginate(jsAst);
        this._code = generator(jsAst).code;
      }
      return this._code;
    }
  });
  // self-check: the rewrite must have removed every `[...$,` accumulator spread
  const probe = cosmosQuery.default("SELECT c.id, t FROM c JOIN t IN c.tags WHERE c.x > 1").code;
  if (/\[\.\.\.\$,/.test(probe) || !/__append/.test(probe) || !/__memo/.test(probe)) {
    process.stderr.write("launch.js: query code patch did not apply\n" + probe + "\n");
    process.exit(1);
  }
}

// ---------------------------------------------------------------------------------------------
// partition keys: canonical key over all components of the container's partition key

const getValue = lib("utils/get-value").default;
const pkHeader = lib("utils/get-partition-from-header");
const getPartitionFromHeader = pkHeader.default;

const canonPk = values => JSON.stringify(values.map(v => (typeof v === "undefined" ? {} : v)));

function parsePkValues(partitionKey) {
  if (partitionKey === undefined || partitionKey === null) return undefined;
  let parsed = partitionKey;
  if (typeof partitionKey === "string") {
    try {
      parsed = JSON.parse(partitionKey);
    } catch (err) {
      const e = new Error(`Failed to parse x-ms-documentdb-partitionkey: ${partitionKey}`);
      e.badRequest = true;
      throw e;
    }
  }
  if (!Array.isArray(parsed)) parsed = [parsed];
  return parsed;
}

// Used by every document operation of the package (read, replace, delete, upsert, patch).
pkHeader.parsePartitionKey = (partitionKey /* , defaultValue */) => {
  const values = parsePkValues(partitionKey);
  if (!values || values.length === 0) return undefined;
  return canonPk(values);
};

const Documents = lib("account/documents").default;
Documents.prototype._getPartition = function _getPartition(data) {
  const paths = this._partitionKeyPath || [];
  if (!paths.length || (paths.length === 1 && paths[0] === "/_partitionKey")) return undefined;
  return canonPk(paths.map(p => getValue(p.slice(1).split("/"), data)));
};
Documents.prototype._getId = function _getId(keyPath, keyValue, partition) {
  const p = typeof partition === "undefined" ? `#${JSON.stringify(keyValue)}` : partition;
  return `${keyPath}\u0000${p}\u0000${JSON.stringify(keyValue)}`;
};
// strict index lookup (the package fell back to treating an unknown id as a _rid)
Documents.prototype._item = function _item(keyPath, keyValue, partition) {
  const rid = this._index.get(this._getId(keyPath, keyValue, partition));
  const item = typeof rid === "undefined" ? undefined : this._data.get(rid);
  return item || this._newItem();
};

// change-feed LSNs: every document version written gets the container's next LSN (a version
// restored by a batch rollback keeps the LSN it had)
const docLsn = new WeakMap();
{
  const ItemsBase = lib("account/items").default;
  Documents.prototype._set = function _set(data) {
    if (!docLsn.has(data)) {
      this.__lsn = (this.__lsn || 0) + 1;
      docLsn.set(data, this.__lsn);
    }
    return ItemsBase.prototype._set.call(this, data); // looked up per call: the versioned wrapper
  };
}

// write version per Items instance (for the query memo)
const Items = lib("account/items").default;
let versionSeq = 0;
{
  const origSet = Items.prototype._set;
  const origDelete = Items.prototype.delete;
  Items.prototype._set = function _set(data) {
    versionSeq += 1;
    this.__version = versionSeq;
    return origSet.call(this, data);
  };
  Items.prototype.delete = function del(...args) {
    versionSeq += 1;
    this.__version = versionSeq;
    return origDelete.apply(this, args);
  };
}
let instanceSeq = 0;
function memoKeyFor(items, sql, parameters, opts) {
  if (!items.__instance) {
    instanceSeq += 1;
    items.__instance = instanceSeq; // eslint-disable-line no-param-reassign
  }
  // only paged requests benefit (the next page reuses the rows); unpaged ones run afresh
  if (!opts || !(opts.maxItemCount > 0)) return null;
  const scopeKey = opts.scope ? opts.scope.key : "";
  return JSON.stringify([items.__instance, items.__version || 0, sql, parameters || null, scopeKey]);
}

// Documents.query / read: same as the package's Items.query / read, plus an optional partition
// scope ({key, fn}) and the paging memo; the rows are only gathered when the memo misses.
function runQuery(items, sql, params, opts, withUdf) {
  if (!items._parent.read()) return null;
  const { maxItemCount, continuation, scope } = opts || {};
  const key = memoKeyFor(items, sql, params && params.parameters, opts);
  let data = [];
  if (key === null || !memo.has(key)) {
    for (const item of items._data.values()) {
      const d = item.read();
      if (!scope || scope.fn(d)) data.push(d);
    }
  } else {
    data = null; // not needed: the memoised rows are used
  }
  const parent = items._parent.read();
  const compositeIndexes =
    (parent.indexingPolicy ? parent.indexingPolicy.compositeIndexes : null) || [];
  const q = items._getQuery(sql);
  memoKey = key;
  try {
    return q.exec(data || [], {
      parameters: params ? params.parameters : undefined,
      udf: withUdf ? items._userDefinedFunctions() : undefined,
      maxItemCount,
      continuation,
      compositeIndexes
    });
  } catch (err) {
    if (withUdf) err.badRequest = true; // eslint-disable-line no-param-reassign
    throw err;
  } finally {
    memoKey = null;
  }
}
Documents.prototype.query = function query(params, opts) {
  return runQuery(this, params.query, params, opts, true);
};
Documents.prototype.read = function read(opts = {}) {
  return runQuery(this, "SELECT * FROM c", null, opts, false);
};

// ---------------------------------------------------------------------------------------------
// effective partition keys (MurmurHash3 x64 128, as the Cosmos SDKs compute them for Hash V2 and
// MultiHash), to serve queries the SDK scopes by an EPK range (hierarchical-key prefixes, feed
// ranges): headers x-ms-start-epk / x-ms-end-epk

const M64 = (1n << 64n) - 1n;
const rotl64 = (x, r) => ((x << BigInt(r)) | (x >> BigInt(64 - r))) & M64;
const fmix64 = k0 => {
  let k = k0;
  k ^= k >> 33n;
  k = (k * 0xff51afd7ed558ccdn) & M64;
  k ^= k >> 33n;
  k = (k * 0xc4ceb9fe1a85ec53n) & M64;
  k ^= k >> 33n;
  return k;
};
function murmur3x64128(buf) {
  const c1 = 0x87c37b91114253d5n;
  const c2 = 0x4cf5ad432745937fn;
  let h1 = 0n;
  let h2 = 0n;
  const len = buf.length;
  let pos = 0;
  while (pos < len - 15) {
    let k1 = buf.readBigUInt64LE(pos);
    let k2 = buf.readBigUInt64LE(pos + 8);
    k1 = rotl64((k1 * c1) & M64, 31);
    k1 = (k1 * c2) & M64;
    h1 = rotl64(h1 ^ k1, 27);
    h1 = (((h1 + h2) & M64) * 5n + 0x52dce729n) & M64;
    k2 = rotl64((k2 * c2) & M64, 33);
    k2 = (k2 * c1) & M64;
    h2 = rotl64(h2 ^ k2, 31);
    h2 = (((h2 + h1) & M64) * 5n + 0x38495ab5n) & M64;
    pos += 16;
  }
  const n = len & 15;
  let k1 = 0n;
  let k2 = 0n;
  for (let i = n; i >= 9; i -= 1) k2 ^= BigInt(buf[pos + i - 1]) << BigInt((i - 9) * 8);
  k2 = rotl64((k2 * c2) & M64, 33);
  k2 = (k2 * c1) & M64;
  h2 ^= k2;
  for (let i = Math.min(n, 8); i >= 1; i -= 1) k1 ^= BigInt(buf[pos + i - 1]) << BigInt((i - 1) * 8);
  k1 = rotl64((k1 * c1) & M64, 31);
  k1 = (k1 * c2) & M64;
  h1 ^= k1;
  h1 ^= BigInt(len);
  h2 ^= BigInt(len);
  h1 = (h1 + h2) & M64;
  h2 = (h2 + h1) & M64;
  h1 = fmix64(h1);
  h2 = fmix64(h2);
  h1 = (h1 + h2) & M64;
  h2 = (h2 + h1) & M64;
  return [h1, h2];
}
function pkComponentBytes(v) {
  if (v === true) return Buffer.from([0x03]);
  if (v === false) return Buffer.from([0x02]);
  if (v === null) return Buffer.from([0x01]);
  if (typeof v === "number") {
    const b = Buffer.alloc(9);
    b[0] = 0x05;
    b.writeDoubleLE(v, 1);
    return b;
  }
  if (typeof v === "string") return Buffer.concat([Buffer.from([0x08]), Buffer.from(v, "utf8"), Buffer.from([0xff])]);
  return Buffer.from([0x00]); // undefined / missing ({} on the wire)
}
function epkHex(buf) {
  const [h1, h2] = murmur3x64128(buf);
  const out = Buffer.alloc(16);
  out.writeBigUInt64BE(h2, 0);
  out.writeBigUInt64BE(h1, 8);
  out[0] &= 0x3f;
  return out.toString("hex").toUpperCase();
}
function effectivePartitionKey(values, kind) {
  if (!values.length) return "";
  if (kind === "MultiHash") return values.map(v => epkHex(pkComponentBytes(v))).join("");
  return epkHex(Buffer.concat(values.map(pkComponentBytes)));
}
const epkCache = new WeakMap();

// which documents a query/read-feed request addresses: a full partition key, a prefix of a
// hierarchical key, or an EPK range; null = all
function partitionScope(req, collData) {
  const paths = collectionPkPaths(collData);
  const kind = (collData.partitionKey && collData.partitionKey.kind) || "Hash";
  const version = (collData.partitionKey && collData.partitionKey.version) || 1;
  const header = getPartitionFromHeader(req);
  const splitPaths = paths.map(p => p.slice(1).split("/"));
  const canon1 = v => JSON.stringify(typeof v === "undefined" ? {} : v);
  if (typeof header !== "undefined") {
    const values = parsePkValues(header);
    if (!values || !values.length || !paths.length) return null;
    if (values.length > paths.length) {
      const e = new Error("Partition key has more components than the container's partition key definition.");
      e.badRequest = true;
      throw e;
    }
    const want = values.map(canon1);
    return {
      key: `pk:${JSON.stringify(want)}`,
      fn: d => want.every((w, i) => canon1(getValue(splitPaths[i], d)) === w)
    };
  }
  const start = req.headers["x-ms-start-epk"];
  const end = req.headers["x-ms-end-epk"];
  if (typeof start === "string" && typeof end === "string" && paths.length) {
    if (start === "" && (end === "FF" || end === "")) return null;
    if (kind !== "MultiHash" && version !== 2) return null; // V1 hashing not implemented: no filter
    return {
      key: `epk:${start}:${end}`,
      fn: d => {
        let e = epkCache.get(d);
        if (e === undefined) {
          e = effectivePartitionKey(splitPaths.map(p => getValue(p, d)), kind);
          epkCache.set(d, e);
        }
        return e >= start && e < end;
      }
    };
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// handlers (patched before routes.js is loaded, which captures them)

const json = lib("json").default;
const trueHeader = lib("true-header").default;
const docOps = lib("handler/_document-operations");
const patchOps = lib("handler/_patch-operations");

function collectionPkPaths(collectionData) {
  const paths = ((collectionData && collectionData.partitionKey) || {}).paths || [];
  return paths.filter(p => p !== "/_partitionKey");
}

lib("handler/read-document").default = (account, req, res, { dbId, collId, docId }) => {
  const collection = account.database(dbId).collection(collId);
  const collData = collection.read();
  if (!collData) {
    res.statusCode = 404;
    return { ...NOT_FOUND };
  }
  const paths = collectionPkPaths(collData);
  let values;
  try {
    values = parsePkValues(getPartitionFromHeader(req));
  } catch (err) {
    res.statusCode = 400;
    return { code: "BadRequest", message: err.message };
  }
  if (paths.length && (!values || values.length === 0)) {
    res.statusCode = 400;
    return {
      code: "BadRequest",
      message: "PartitionKey value must be supplied for this operation."
    };
  }
  if (paths.length && values.length !== paths.length) {
    res.statusCode = 400;
    return {
      code: "BadRequest",
      message: `Partition key provided either doesn't correspond to definition in the collection or doesn't match partition key field values specified in the document. (${values.length} component(s) given, ${paths.length} defined)`
    };
  }
  const data = collection.document(docId, values && values.length ? canonPk(values) : undefined).read();
  if (!data) {
    res.statusCode = 404;
    return { ...NOT_FOUND };
  }
  res.statusCode = 200;
  return data;
};

function notFoundBody(handlerModule) {
  const orig = handlerModule.default;
  handlerModule.default = async (account, req, res, params) => {
    if (!account.database(params.dbId).collection(params.collId).read()) {
      res.statusCode = 404;
      return { ...NOT_FOUND };
    }
    let body;
    try {
      body = await orig(account, req, res, params);
    } catch (err) {
      if (err && err.badRequest) {
        res.statusCode = 400;
        return { code: "BadRequest", message: err.message };
      }
      throw err;
    }
    if (res.statusCode === 404 && (!body || !body.code)) return { ...NOT_FOUND };
    return body;
  };
}
notFoundBody(lib("handler/delete-document"));
notFoundBody(lib("handler/replace-document"));
notFoundBody(lib("handler/patch-document"));
notFoundBody(lib("handler/upsert-document"));
notFoundBody(lib("handler/create-document"));

const readItems = lib("handler/_read-items").default;

// ---------------------------------------------------------------------------------------------
// SQL the package's parser lacks, handled by rewriting the text around it:
//   <path> [NOT] LIKE 'pattern' | @param [ESCAPE 'c']  ->  [NOT] REGEXMATCH(<path>, @__likeN)
//   SELECT DISTINCT [TOP n] ...      (top level only)    ->  rows de-duplicated here
//   ... OFFSET n LIMIT m             (end of the query)  ->  rows sliced here
// String literals are masked first so that nothing inside them is touched. The DISTINCT and
// OFFSET/LIMIT results are paged here with an index continuation.

function maskLiterals(sql) {
  const lits = [];
  const masked = sql.replace(/'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"/g, m => {
    lits.push(m);
    return `\u0001${lits.length - 1}\u0002`;
  });
  return { masked, lits };
}
const unmask = (text, lits) => text.replace(/\u0001(\d+)\u0002/g, (m, i) => lits[+i]);
const literalValue = lit => {
  const body = lit.slice(1, -1);
  return body.replace(/\\(.)/g, (m, ch) => ({ n: "\n", t: "\t", r: "\r", b: "\b", f: "\f" }[ch] || ch));
};
function likeToRegex(pattern, escape) {
  let out = "^";
  for (let i = 0; i < pattern.length; i += 1) {
    const ch = pattern[i];
    if (escape && ch === escape && i + 1 < pattern.length) {
      i += 1;
      out += pattern[i].replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
    } else if (ch === "%") out += "[\\s\\S]*";
    else if (ch === "_") out += "[\\s\\S]";
    else if (ch === "[") {
      const close = pattern.indexOf("]", i + 1);
      if (close > i + 1) {
        let set = pattern.slice(i + 1, close).replace(/\\/g, "\\\\");
        if (set[0] === "^") set = `^${set.slice(1)}`;
        out += `[${set}]`;
        i = close;
      } else out += "\\[";
    } else out += ch.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  }
  return `${out}$`;
}

function preprocessSql(sql, parameters) {
  const { masked: m0, lits } = maskLiterals(sql);
  let masked = m0;
  const params = (parameters || []).slice();
  const paramValue = name => {
    const p = params.find(x => x.name === name);
    if (!p) {
      const e = new Error(`Parameter ${name} is not defined`);
      e.badRequest = true;
      throw e;
    }
    return p.value;
  };
  const valueOf = tok => (tok[0] === "@" ? paramValue(tok) : /^\u0001/.test(tok) ? literalValue(lits[+tok.slice(1, -1)]) : Number(tok));
  const post = {};
  let changed = false;

  const likeRe = /([A-Za-z_$][\w$]*(?:\s*\.\s*[A-Za-z_$][\w$]*|\s*\[\s*(?:\u0001\d+\u0002|\d+)\s*\])*)\s+(NOT\s+)?LIKE\s+(\u0001\d+\u0002|@\w+)(?:\s+ESCAPE\s+(\u0001\d+\u0002))?/gi;
  let likeN = 0;
  masked = masked.replace(likeRe, (m, pathExpr, not, pat, esc) => {
    changed = true;
    const pattern = valueOf(pat);
    if (typeof pattern !== "string") {
      const e = new Error("LIKE pattern must be a string");
      e.badRequest = true;
      throw e;
    }
    const escape = esc ? literalValue(lits[+esc.slice(1, -1)]) : null;
    const name = `@__like${likeN}`;
    likeN += 1;
    params.push({ name, value: likeToRegex(pattern, escape) });
    return `${not ? "NOT " : ""}REGEXMATCH(${pathExpr}, ${name})`;
  });

  const offRe = /\s+OFFSET\s+(\d+|@\w+)\s+LIMIT\s+(\d+|@\w+)\s*$/i;
  const om = masked.match(offRe);
  if (om) {
    changed = true;
    post.offset = valueOf(om[1]);
    post.limit = valueOf(om[2]);
    if (!Number.isInteger(post.offset) || !Number.isInteger(post.limit) || post.offset < 0 || post.limit < 0) {
      const e = new Error("OFFSET and LIMIT take non-negative integers");
      e.badRequest = true;
      throw e;
    }
    masked = masked.slice(0, om.index);
  }
  const dm = masked.match(/^\s*SELECT\s+DISTINCT\s+(?:TOP\s+(\d+|@\w+)\s+)?/i);
  if (dm) {
    changed = true;
    post.distinct = true;
    if (dm[1] !== undefined) post.top = valueOf(dm[1]);
    masked = `SELECT ${masked.slice(dm[0].length)}`;
  }
  const gb = findTopLevel(masked, /\bGROUP\s+BY\b/i);
  if (gb) {
    changed = true;
    const built = buildGroupBy(masked.slice(0, gb.index), masked.slice(gb.index + gb.length), valueOf, lits);
    masked = built.inner;
    post.group = built.group;
  }
  if (!changed) return null;
  return { sql: unmask(masked, lits), parameters: params, post };
}

// --- GROUP BY: the query runs without it, projecting the grouping expressions and the
// aggregates' arguments; groups and aggregates (the package's own COUNT/SUM/AVG/MIN/MAX) are
// computed here. Select items must be grouping expressions or single aggregate calls.
const aggregateFns = qlib("aggregate-functions");
function badRequest(message) {
  const e = new Error(message);
  e.badRequest = true;
  return e;
}
function findTopLevel(text, re) {
  let depth = 0;
  for (let i = 0; i < text.length; i += 1) {
    const ch = text[i];
    if (ch === "(" || ch === "[" || ch === "{") depth += 1;
    else if (ch === ")" || ch === "]" || ch === "}") depth -= 1;
    else if (depth === 0 && (i === 0 || /\s/.test(text[i - 1]))) {
      const m = text.slice(i).match(re);
      if (m && m.index === 0) return { index: i, length: m[0].length };
    }
  }
  return null;
}
function splitTopLevel(text) {
  const parts = [];
  let depth = 0;
  let last = 0;
  for (let i = 0; i < text.length; i += 1) {
    const ch = text[i];
    if (ch === "(" || ch === "[" || ch === "{") depth += 1;
    else if (ch === ")" || ch === "]" || ch === "}") depth -= 1;
    else if (ch === "," && depth === 0) {
      parts.push(text.slice(last, i));
      last = i + 1;
    }
  }
  parts.push(text.slice(last));
  return parts.map(x => x.trim());
}
const balanced = t => {
  let d = 0;
  for (const ch of t) {
    if (ch === "(") d += 1;
    else if (ch === ")") {
      d -= 1;
      if (d < 0) return false;
    }
  }
  return d === 0;
};
const normExpr = t => t.replace(/\s+/g, "").toLowerCase();
function buildGroupBy(head, groupText, valueOf, lits) {
  const groupExprs = splitTopLevel(groupText.trim());
  if (!groupExprs.length || groupExprs.some(g => !g)) throw badRequest("Syntax error near GROUP BY");
  const sm = head.match(/^\s*SELECT\s+(?:TOP\s+(\d+|@\w+)\s+)?(VALUE\s+)?/i);
  if (!sm) throw badRequest("GROUP BY needs a SELECT query");
  const top = sm[1] !== undefined ? valueOf(sm[1]) : undefined;
  const isValue = !!sm[2];
  const afterSelect = head.slice(sm[0].length);
  const from = findTopLevel(afterSelect, /\bFROM\b/i);
  if (!from) throw badRequest("GROUP BY needs a FROM clause");
  const items = splitTopLevel(afterSelect.slice(0, from.index));
  const fromRest = afterSelect.slice(from.index);
  if (isValue && items.length !== 1) throw badRequest("SELECT VALUE takes one expression");
  let unnamed = 0;
  const aggArgs = [];
  const outs = items.map(item => {
    let expr = item;
    let alias = null;
    const am = item.match(/^([\s\S]*?\S)\s+AS\s+([A-Za-z_$][\w$]*)$/i) ||
      (!isValue && item.match(/^([\s\S]*[)\w\]])\s+([A-Za-z_$][\w$]*)$/));
    if (am) {
      [, expr, alias] = am;
    }
    const agg = expr.match(/^(COUNT|SUM|AVG|MIN|MAX)\s*\(([\s\S]*)\)$/i);
    if (agg && balanced(agg[2])) {
      aggArgs.push(agg[2].trim());
      if (!alias) {
        unnamed += 1;
        alias = `$${unnamed}`;
      }
      return { kind: "agg", fn: agg[1].toUpperCase(), arg: aggArgs.length - 1, alias };
    }
    const gi = groupExprs.findIndex(g => normExpr(g) === normExpr(expr));
    if (gi < 0) {
      throw badRequest(`Property reference '${unmask(expr, lits)}' is invalid in the select list because it is not contained in either an aggregate function or the GROUP BY clause.`);
    }
    if (!alias) {
      const pm = expr.match(/(?:\.\s*([A-Za-z_$][\w$]*)|\[\s*\u0001(\d+)\u0002\s*\])\s*$/);
      if (pm && pm[1]) alias = pm[1];
      else if (pm && pm[2] !== undefined) alias = literalValue(lits[+pm[2]]);
      else {
        unnamed += 1;
        alias = `$${unnamed}`;
      }
    }
    return { kind: "group", index: gi, alias };
  });
  const proj = [
    ...groupExprs.map((g, i) => `${g} AS __g${i}`),
    ...aggArgs.map((a, i) => `${a} AS __a${i}`)
  ];
  return {
    inner: `SELECT ${proj.join(", ")} ${fromRest}`,
    group: { n: groupExprs.length, nArgs: aggArgs.length, outs, isValue, top }
  };
}
function groupRows(rows, g) {
  const groups = new Map();
  for (const r of rows) {
    const gv = [];
    for (let i = 0; i < g.n; i += 1) gv.push(r[`__g${i}`]);
    const key = JSON.stringify(gv.map(v => (v === undefined ? { $undefined: true } : v)));
    let grp = groups.get(key);
    if (!grp) {
      grp = { gv, args: Array.from({ length: g.nArgs }, () => []) };
      groups.set(key, grp);
    }
    for (let i = 0; i < g.nArgs; i += 1) grp.args[i].push(r[`__a${i}`]);
  }
  let out = [...groups.values()].map(grp => {
    const vals = g.outs.map(o => (o.kind === "agg" ? aggregateFns[o.fn](grp.args[o.arg]) : grp.gv[o.index]));
    if (g.isValue) return vals[0];
    const obj = {};
    g.outs.forEach((o, i) => {
      if (vals[i] !== undefined) obj[o.alias] = vals[i];
    });
    return obj;
  });
  if (g.isValue) out = out.filter(v => v !== undefined);
  if (g.top !== undefined) out = out.slice(0, g.top);
  return out;
}

function stableStringify(v) {
  if (Array.isArray(v)) return `[${v.map(stableStringify).join(",")}]`;
  if (v && typeof v === "object") {
    return `{${Object.keys(v).sort().map(k => `${JSON.stringify(k)}:${stableStringify(v[k])}`).join(",")}}`;
  }
  return JSON.stringify(v);
}

function runPostProcessed(collection, pre, scope, { continuation, maxItemCount }) {
  const docs = collection.documents;
  const key = `pp:${memoKeyFor(docs, pre.sql, pre.parameters, { maxItemCount: 1, scope })}:${JSON.stringify(pre.post)}`;
  let rows = memo.get(key);
  if (!rows) {
    const full = docs.query({ query: pre.sql, parameters: pre.parameters }, { scope });
    if (!full) return null;
    rows = full.result;
    const { post } = pre;
    if (post.group) rows = groupRows(rows, post.group);
    if (post.distinct) {
      const seen = new Set();
      rows = rows.filter(r => {
        const k = stableStringify(r);
        if (seen.has(k)) return false;
        seen.add(k);
        return true;
      });
      if (post.top !== undefined) rows = rows.slice(0, post.top);
    }
    if (post.offset !== undefined) rows = rows.slice(post.offset, post.offset + post.limit);
    memo.set(key, rows);
    while (memo.size > MEMO_MAX) memo.delete(memo.keys().next().value);
  }
  let start = 0;
  if (continuation && typeof continuation.token === "string" && continuation.token.startsWith("PP:")) {
    start = parseInt(continuation.token.slice(3), 10) || 0;
  }
  const end = maxItemCount > 0 ? start + maxItemCount : rows.length;
  return {
    result: rows.slice(start, end),
    continuation: end < rows.length ? { token: `PP:${end}`, range: { min: "", max: "FF" } } : null
  };
}

lib("handler/query-documents").default = async (account, req, res, { dbId, collId }) => {
  const collection = account.database(dbId).collection(collId);
  const collData = collection.read();
  if (!collData) {
    res.statusCode = 404;
    return { ...NOT_FOUND };
  }
  try {
    return await readItems(req, res, "Documents", async ({ continuation, maxItemCount }) => {
      const body = await json(req);
      if (!body.query) {
        res.statusCode = 400;
        return { code: "BadRequest", message: "missing query" };
      }
      const scope = partitionScope(req, collData);
      const pre = preprocessSql(body.query, body.parameters);
      if (pre) return runPostProcessed(collection, pre, scope, { continuation, maxItemCount });
      return collection.documents.query(body, { continuation, maxItemCount, scope });
    });
  } catch (err) {
    if (err && err.badRequest) {
      res.statusCode = 400;
      return { code: "BadRequest", message: err.message };
    }
    throw err;
  }
};

// change feed (latest-version mode): GET .../docs with "A-IM: Incremental feed". Continuation is
// the etag ("<lsn>"), sent back as If-None-Match; "*" = from now; If-Modified-Since = from a
// point in time; scoped by partition key or EPK range like queries. Deletes are not reported
// (as in Cosmos' latest-version mode).
{
  const readDocs = lib("handler/read-documents");
  const origReadDocs = readDocs.default;
  readDocs.default = async (account, req, res, params) => {
    const aim = req.headers["a-im"];
    if (!aim) return origReadDocs(account, req, res, params);
    delete req.headers["a-im"]; // keep the package's change-feed stub out of the response
    const collection = account.database(params.dbId).collection(params.collId);
    const collData = collection.read();
    if (!collData) {
      res.statusCode = 404;
      return { ...NOT_FOUND };
    }
    if (!/incremental/i.test(aim)) {
      res.statusCode = 400;
      return { code: "BadRequest", message: `change feed mode "${aim}" is not supported by this emulator (only latest version / Incremental feed)` };
    }
    let scope;
    try {
      scope = partitionScope(req, collData);
    } catch (err) {
      res.statusCode = 400;
      return { code: "BadRequest", message: err.message };
    }
    const docs = collection.documents;
    const current = docs.__lsn || 0;
    const inm = req.headers["if-none-match"];
    let since = 0;
    if (inm === "*") since = current;
    else if (inm) {
      since = parseInt(String(inm).replace(/"/g, ""), 10);
      if (Number.isNaN(since)) {
        res.statusCode = 400;
        return { code: "BadRequest", message: `invalid change feed continuation ${inm}` };
      }
    }
    const ims = req.headers["if-modified-since"];
    const tsMin = ims && !inm ? Date.parse(ims) / 1000 : null;
    const changed = [];
    for (const item of docs._data.values()) {
      const d = item.read();
      const l = docLsn.get(d) || 0;
      if (l > since && (!scope || scope.fn(d)) && (tsMin === null || d._ts >= tsMin)) changed.push([l, d]);
    }
    changed.sort((a, b) => a[0] - b[0]);
    const max = parseInt(req.headers["x-ms-max-item-count"], 10);
    const page = max > 0 ? changed.slice(0, max) : changed;
    const etag = page.length < changed.length ? page[page.length - 1][0] : current;
    res.setHeader("etag", `"${etag}"`);
    res.setHeader("x-ms-item-count", String(page.length));
    if (!page.length) {
      res.statusCode = 304;
      return undefined;
    }
    res.statusCode = 200;
    return {
      _rid: collData._rid,
      Documents: page.map(([l, d]) => ({ ...d, _lsn: l })),
      _count: page.length
    };
  };
}

lib("handler/batch-documents").default = async (account, req, res, { dbId, collId }) => {
  const body = await json(req);
  const continueOnError = trueHeader(req, "x-ms-cosmos-batch-continue-on-error");
  const isAtomic = trueHeader(req, "x-ms-cosmos-batch-atomic") && !continueOnError;
  const collection = account.database(dbId).collection(collId);
  if (!collection.read()) {
    res.statusCode = 404;
    return { ...NOT_FOUND };
  }
  if (!Array.isArray(body)) {
    res.statusCode = 400;
    return { code: "BadRequest", message: "Invalid request body" };
  }
  if (body.length > 100) {
    res.statusCode = 400;
    return {
      code: "BadRequest",
      message: "Batch request has more operations than what is supported."
    };
  }
  const headerPk = getPartitionFromHeader(req);
  const docs = collection.documents;
  const undo = []; // {id, pk, prior}
  const results = [];
  let failedAt = -1;
  for (let i = 0; i < body.length; i += 1) {
    const op = body[i] || {};
    if (failedAt >= 0 && !continueOnError) {
      results.push({ statusCode: 424, requestCharge: 0 });
      continue; // eslint-disable-line no-continue
    }
    const input = {
      ...op,
      partitionKey: typeof op.partitionKey !== "undefined" ? op.partitionKey : headerPk
    };
    let result;
    try {
      const itemId = op.resourceBody && op.resourceBody.id !== undefined && op.operationType !== "Patch"
        ? op.resourceBody.id
        : op.id;
      const pk =
        op.operationType === "Create" || op.operationType === "Upsert" || op.operationType === "Replace"
          ? op.resourceBody && docs._getPartition(op.resourceBody)
          : pkHeader.parsePartitionKey(input.partitionKey);
      if (itemId !== undefined) {
        const before = docs._item("/id", itemId, pk).read();
        undo.push({ id: itemId, pk, prior: before });
      }
      switch (op.operationType) {
        case "Create":
          result = docOps.createOperation(collection, input);
          break;
        case "Upsert":
          result = docOps.upsertOperation(collection, input);
          break;
        case "Read":
          result = docOps.readOperation(collection, input);
          break;
        case "Delete":
          result = docOps.deleteOperation(collection, input);
          break;
        case "Replace":
          result = docOps.replaceOperation(collection, input);
          break;
        case "Patch": {
          const rb = op.resourceBody || {};
          result = patchOps.patchOperation(collection, {
            id: op.id,
            partitionKey: input.partitionKey,
            ifMatch: op.ifMatch,
            operations: Array.isArray(rb) ? rb : rb.operations || [],
            condition: Array.isArray(rb) ? undefined : rb.condition
          });
          break;
        }
        default:
          result = {
            statusCode: 400,
            body: { message: `Operation type '${op.operationType}' is not supported in Batch.` }
          };
      }
    } catch (err) {
      if (!err || !err.badRequest) throw err;
      result = { statusCode: 400, body: { code: "BadRequest", message: err.message } };
    }
    if (result.statusCode >= 400) {
      if (failedAt < 0) failedAt = i;
      results.push({
        statusCode: result.statusCode,
        requestCharge: 0,
        ...(result.body && result.body.message ? { message: result.body.message } : {})
      });
    } else {
      results.push({
        statusCode: result.statusCode,
        requestCharge: 1,
        eTag: result.body ? result.body._etag : undefined,
        resourceBody: result.body
      });
    }
  }
  if (failedAt >= 0 && isAtomic) {
    // roll back every change in reverse order; every other operation reports 424
    for (let i = undo.length - 1; i >= 0; i -= 1) {
      const { id: itemId, pk, prior } = undo[i];
      const current = docs._item("/id", itemId, pk).read();
      if (current) docs.delete(itemId, pk);
      if (prior) docs._set(prior);
    }
    for (let i = 0; i < results.length; i += 1) {
      if (i !== failedAt) results[i] = { statusCode: 424, requestCharge: 0 };
    }
    res.statusCode = 207;
  } else {
    res.statusCode = 200;
  }
  return results;
};

// ---------------------------------------------------------------------------------------------
// replacing a container (indexing policy, TTL, ...) keeps its items: the package rebuilt the
// Collection object and so dropped every document, UDF and partition key range

let currentAccount = null;
{
  const Collections = lib("account/collections").default;
  const origReplace = Collections.prototype.replace;
  Collections.prototype.replace = function replace(data, original) {
    const before = this._data.get(original._rid);
    const result = origReplace.call(this, data, original);
    const after = this._data.get(result._rid);
    if (before && after && before !== after) {
      for (const k of ["documents", "userDefinedFunctions", "partitionKeyRanges"]) {
        after[k] = before[k];
        after[k]._parent = after;
      }
    }
    return result;
  };
}

// ---------------------------------------------------------------------------------------------
// TTL: a sweep every second deletes expired items of containers with defaultTtl set (item "ttl"
// overrides; -1 = never). Expired items stay visible for up to ~1 s.

const ttlTimer = setInterval(() => {
  if (!currentAccount) return;
  const now = Math.floor(Date.now() / 1000);
  for (const dbItem of currentAccount.databases._data.values()) {
    if (!dbItem.read()) continue; // eslint-disable-line no-continue
    for (const cItem of dbItem.collections._data.values()) {
      const coll = cItem.read();
      if (!coll || typeof coll.defaultTtl !== "number") continue; // eslint-disable-line no-continue
      const docs = cItem.documents;
      const expired = [];
      for (const item of docs._data.values()) {
        const d = item.read();
        const ttl = typeof d.ttl === "number" ? d.ttl : coll.defaultTtl;
        if (ttl > 0 && d._ts + ttl <= now) expired.push(d);
      }
      for (const d of expired) docs.delete(d.id, docs._getPartition(d));
    }
  }
}, 1000);
ttlTimer.unref();

// ---------------------------------------------------------------------------------------------
// a few system functions the package's query engine lacks

{
  const b = qlib("builtin-functions");
  const isStr = v => typeof v === "string";
  if (!b.STRINGEQUALS) {
    b.STRINGEQUALS = (x, y, ignoreCase) => {
      if (!isStr(x) || !isStr(y)) return undefined;
      return ignoreCase === true ? x.toLowerCase() === y.toLowerCase() : x === y;
    };
  }
  b.GETCURRENTDATETIME = () => new Date().toISOString().replace("Z", "0000Z");
  b.GETCURRENTTIMESTAMP = () => Date.now();
  b.GETCURRENTTICKS = () => Date.now() * 10000 + 621355968000000000;
  b.STRINGTONUMBER = x => {
    if (!isStr(x) || !x.trim()) return undefined;
    const n = Number(x.trim());
    return Number.isFinite(n) ? n : undefined;
  };
  b.STRINGTOBOOLEAN = x => (isStr(x) && /^\s*(true|false)\s*$/.test(x) ? x.trim() === "true" : undefined);
  b.IIF = (cond, a, c) => (cond === true ? a : c);
  b.IS_FINITE_NUMBER = x => typeof x === "number" && Number.isFinite(x);
  b.ARRAY_CONTAINS_ANY = (arr, ...vals) =>
    Array.isArray(arr) ? vals.some(v => arr.some(a => JSON.stringify(a) === JSON.stringify(v))) : undefined;
  b.ARRAY_CONTAINS_ALL = (arr, ...vals) =>
    Array.isArray(arr) ? vals.every(v => arr.some(a => JSON.stringify(a) === JSON.stringify(v))) : undefined;
}

// ---------------------------------------------------------------------------------------------
// delete all items of a partition key (POST .../operations/partitionkeydelete); done at once

const partitionKeyDelete = async (account, req, res, { dbId, collId }) => {
  const collection = account.database(dbId).collection(collId);
  const collData = collection.read();
  if (!collData) {
    res.statusCode = 404;
    return { ...NOT_FOUND };
  }
  let scope;
  try {
    scope = typeof getPartitionFromHeader(req) === "undefined" ? null : partitionScope(req, collData);
  } catch (err) {
    res.statusCode = 400;
    return { code: "BadRequest", message: err.message };
  }
  if (!scope) {
    res.statusCode = 400;
    return { code: "BadRequest", message: "PartitionKey value must be supplied for this operation." };
  }
  const docs = collection.documents;
  const doomed = [];
  for (const item of docs._data.values()) {
    const d = item.read();
    if (scope.fn(d)) doomed.push(d);
  }
  for (const d of doomed) docs.delete(d.id, docs._getPartition(d));
  res.statusCode = 200;
  return {};
};

// ---------------------------------------------------------------------------------------------
// throughput (offers): in memory, nothing is enforced. A container or database created with
// x-ms-offer-throughput / x-ms-cosmos-offer-autopilot-settings gets that offer; a container in a
// database without shared throughput gets 400 RU/s manual, as in Cosmos. Routes: query / read
// feed /offers, GET and PUT /offers/{id}.

const offers = new Map(); // resource _self -> offer
let offerSeq = 0;
function makeOffer(resource, headers) {
  const rid = resource._rid;
  offerSeq += 1;
  const id = Buffer.from(`of${offerSeq}`).toString("base64").replace(/=+$/, "");
  const content = { offerThroughput: 400, offerIsRUPerMinuteThroughputEnabled: false };
  const auto = headers && headers["x-ms-cosmos-offer-autopilot-settings"];
  const manual = headers && headers["x-ms-offer-throughput"];
  if (auto) {
    const a = JSON.parse(auto);
    const max = a.maxThroughput || 4000;
    content.offerThroughput = Math.max(400, Math.round(max / 10));
    content.offerAutopilotSettings = { maxThroughput: max, autoUpgradePolicy: a.autoUpgradePolicy };
  } else if (manual) content.offerThroughput = parseInt(manual, 10);
  return {
    id,
    _rid: id,
    _self: `offers/${id}/`,
    resource: resource._self,
    offerResourceId: rid,
    offerType: "Invalid",
    offerVersion: "V2",
    content,
    _etag: `"${crypto.randomUUID()}"`,
    _ts: Math.floor(Date.now() / 1000)
  };
}
const crypto = require("crypto");
function wrapCreate(handlerModule, kind) {
  const orig = handlerModule.default;
  handlerModule.default = async (account, req, res, params) => {
    const body = await orig(account, req, res, params);
    if (res.statusCode === 201 && body && body._self) {
      const hasOffer = req.headers["x-ms-offer-throughput"] || req.headers["x-ms-cosmos-offer-autopilot-settings"];
      if (hasOffer) offers.set(body._self, makeOffer(body, req.headers));
      else if (kind === "collection") {
        const db = account.database(params.dbId).read();
        if (!db || !offers.has(db._self)) offers.set(body._self, makeOffer(body, null));
      }
    }
    return body;
  };
}
wrapCreate(lib("handler/create-database"), "database");
wrapCreate(lib("handler/create-collection"), "collection");
function liveOffers(account) {
  const live = new Set();
  for (const dbItem of account.databases._data.values()) {
    const db = dbItem.read();
    if (!db) continue; // eslint-disable-line no-continue
    live.add(db._self);
    for (const cItem of dbItem.collections._data.values()) {
      const c = cItem.read();
      if (c) live.add(c._self);
    }
  }
  for (const k of [...offers.keys()]) if (!live.has(k)) offers.delete(k);
  return [...offers.values()];
}
const offersQuery = async (account, req, res) => readItems(req, res, "Offers", async ({ continuation, maxItemCount }) => {
  let query = "SELECT * FROM root r";
  let parameters;
  if (req.method === "POST") {
    const body = await json(req);
    query = body.query;
    parameters = body.parameters;
  }
  return cosmosQuery.default(query).exec(liveOffers(account), { parameters, maxItemCount, continuation });
});
const offerById = async (account, req, res, { offerId }) => {
  const offer = liveOffers(account).find(o => o.id === offerId || o._rid === offerId);
  if (!offer) {
    res.statusCode = 404;
    return { ...NOT_FOUND };
  }
  if (req.method === "GET") return offer;
  const body = await json(req);
  if (req.headers["if-match"] && req.headers["if-match"] !== offer._etag) {
    res.statusCode = 412;
    return { code: "PreconditionFailed", message: "Operation cannot be performed because one of the specified precondition is not met." };
  }
  const updated = {
    ...offer,
    content: { ...offer.content, ...(body.content || {}) },
    _etag: `"${crypto.randomUUID()}"`,
    _ts: Math.floor(Date.now() / 1000)
  };
  offers.set(offer.resource, updated);
  return updated;
};

// ---------------------------------------------------------------------------------------------
// account: advertise the real scheme

const accountMod = lib("account");
{
  const OrigAccount = accountMod.default;
  accountMod.default = class Account extends OrigAccount {
    constructor(host, p) {
      super(host, p);
      currentAccount = this; // eslint-disable-line no-use-before-define
      const data = this.read();
      for (const loc of [...data.writableLocations, ...data.readableLocations]) {
        loc.databaseAccountEndpoint = `${scheme}://${host}:${p}/`;
      }
    }
  };
}

// ---------------------------------------------------------------------------------------------
// routes: fault injection, then the package's own table

const routesMod = lib("routes");
{
  const origRoutes = routesMod.default;
  let fault = null; // {status, count, retryAfterMs, path}

  const faultsHandler = async (account, req, res) => {
    if (req.method === "DELETE") {
      fault = null;
      res.statusCode = 200;
      return { fault: null };
    }
    const body = await json(req);
    const count = Number.isInteger(body.count) ? body.count : 1;
    fault = {
      status: Number.isInteger(body.status) ? body.status : 429,
      count,
      retryAfterMs: Number.isInteger(body.retryAfterMs) ? body.retryAfterMs : 10,
      path: typeof body.path === "string" ? body.path : "/dbs/"
    };
    res.statusCode = 200;
    return { fault };
  };

  const faultyHandler = f => async (account, req, res) => {
    res.statusCode = f.status;
    if (f.status === 429) {
      res.setHeader("x-ms-retry-after-ms", String(f.retryAfterMs));
      res.setHeader("x-ms-substatus", "3200");
      return {
        code: "TooManyRequests",
        message: "Request rate is large. More Request Units may be needed, so no changes were made. Please retry this request later."
      };
    }
    return { code: "InjectedFault", message: `injected status ${f.status}` };
  };

  const debug = !!process.env.COSMOS_LAUNCH_DEBUG;
  routesMod.default = req => {
    const pathname = (req.url || "").split("?")[0];
    if (debug) {
      const hs = Object.entries(req.headers)
        .filter(([k]) => k.startsWith("x-ms-") && !/date|version|user-agent|activity|session|consistency/.test(k))
        .map(([k, v]) => `${k}=${v}`)
        .join(" ");
      process.stderr.write(`[req] ${req.method} ${pathname} ${hs}\n`);
    }
    if (pathname === "/_turnout/faults" && (req.method === "POST" || req.method === "DELETE")) {
      return [{}, faultsHandler];
    }
    const norm = pathname.replace(/^\/\//, "/").replace(/\/+$/, "");
    if (norm === "/offers" && (req.method === "GET" || req.method === "POST")) {
      return [{}, offersQuery];
    }
    const pkd = norm.match(/^\/dbs\/([^/]+)\/colls\/([^/]+)\/operations\/partitionkeydelete$/);
    if (pkd && req.method === "POST") {
      return [{ dbId: decodeURIComponent(pkd[1]), collId: decodeURIComponent(pkd[2]) }, partitionKeyDelete];
    }
    const om = norm.match(/^\/offers\/([^/]+)$/);
    if (om && (req.method === "GET" || req.method === "PUT")) {
      return [{ offerId: decodeURIComponent(om[1]) }, offerById];
    }
    if (fault && fault.count > 0 && pathname.includes(fault.path)) {
      const f = { ...fault };
      fault.count -= 1;
      if (fault.count <= 0) fault = null;
      return [{}, faultyHandler(f)];
    }
    return origRoutes(req);
  };
}

// ---------------------------------------------------------------------------------------------
// start

const server = lib("index");
const create = scheme === "http" ? server.createHttpServer : server.createHttpsServer;
const srv = create({ keepAlive: true });
srv.keepAliveTimeout = 120 * 1000;
srv.headersTimeout = 125 * 1000;
srv.on("error", err => {
  process.stderr.write(`launch.js: ${err.message}\n`);
  process.exit(1);
});
srv.listen(port, HOST, () => {
  const addr = srv.address();
  process.stdout.write(`listening on ${HOST}:${addr.port}\n`);
});

const stop = () => {
  srv.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
