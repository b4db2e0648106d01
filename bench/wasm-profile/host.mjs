// A stand-in proxy-wasm host for profiling a plugin's own Wasm code under
// V8 (the engine Envoy embeds, here with Liftoff off as in Envoy). It loads
// a .wasm built with symbol names, configures it, replays one request many
// times and prints how many host calls each request made. Run it with
// `node --cpu-prof` to see which Rust functions the time goes to:
// `meshguard-bench profile` does, and summarizes the profile.
//
// usage: node --no-liftoff host.mjs PLUGIN.wasm CONFIG.json TOKEN REQUESTS WARM_UP

import { readFileSync } from 'node:fs';
import { WASI } from 'node:wasi';

const [wasmPath, configPath, token, requestsArg = '100000', warmUpArg = '2000'] = process.argv.slice(2);
const config = readFileSync(configPath);
const requests = Number(requestsArg);
const warmUp = Number(warmUpArg);
const decoder = new TextDecoder();

const OK = 0;
const NOT_FOUND = 1;
const CAS_MISMATCH = 8;

let exports_;
const bytes = () => new Uint8Array(exports_.memory.buffer);
const view = () => new DataView(exports_.memory.buffer);
const text = (ptr, len) => decoder.decode(bytes().subarray(ptr, ptr + len));

// Hands `data` to the module the way Envoy does: in a buffer the module allocates.
function give(data, retPtr, retLen) {
  const ptr = exports_.proxy_on_memory_allocate(data.length);
  bytes().set(data, ptr);
  view().setUint32(retPtr, ptr, true);
  view().setUint32(retLen, data.length, true);
  return OK;
}

function serializeMap(pairs) {
  const encoded = pairs.map(([k, v]) => [Buffer.from(k), Buffer.from(v)]);
  const size = 4 + encoded.reduce((n, [k, v]) => n + 8 + k.length + v.length + 2, 0);
  const out = Buffer.alloc(size);
  out.writeUInt32LE(pairs.length, 0);
  let at = 4;
  for (const [k, v] of encoded) {
    out.writeUInt32LE(k.length, at);
    out.writeUInt32LE(v.length, at + 4);
    at += 8;
  }
  for (const [k, v] of encoded) {
    at += k.copy(out, at) + 1;
    at += v.copy(out, at) + 1;
  }
  return out;
}

// Header maps by proxy-wasm MapType: 0 request headers, 2 response headers.
const maps = { 0: [], 2: [] };
const shared = new Map();
let nextCas = 1;
const calls = {};
const counted = (name, f) => (...args) => {
  calls[name] = (calls[name] || 0) + 1;
  return f(...args);
};
const removeAll = (map, name) => {
  for (let i = map.length - 1; i >= 0; i--) if (map[i][0] === name) map.splice(i, 1);
};

const host = {
  proxy_log: (level, ptr, len) => {
    if (level >= 4) console.error(`plugin log (${level}): ${text(ptr, len)}`);
    return OK;
  },
  proxy_get_buffer_bytes: (type, start, max, retPtr, retLen) => give(config, retPtr, retLen),
  proxy_set_tick_period_milliseconds: () => OK,
  proxy_define_metric: (type, ptr, len, retId) => {
    view().setUint32(retId, 1, true);
    return OK;
  },
  proxy_set_effective_context: () => OK,
  proxy_get_header_map_pairs: counted('get_header_map', (type, retPtr, retLen) =>
    give(serializeMap(maps[type] || []), retPtr, retLen)),
  proxy_get_header_map_value: counted('get_header', (type, kPtr, kLen, retPtr, retLen) => {
    const name = text(kPtr, kLen);
    const entry = (maps[type] || []).find(([k]) => k === name);
    return entry ? give(Buffer.from(entry[1]), retPtr, retLen) : NOT_FOUND;
  }),
  proxy_replace_header_map_value: counted('replace_header', (type, kPtr, kLen, vPtr, vLen) => {
    const name = text(kPtr, kLen);
    removeAll(maps[type], name);
    maps[type].push([name, text(vPtr, vLen)]);
    return OK;
  }),
  proxy_add_header_map_value: counted('add_header', (type, kPtr, kLen, vPtr, vLen) => {
    maps[type].push([text(kPtr, kLen), text(vPtr, vLen)]);
    return OK;
  }),
  proxy_remove_header_map_value: counted('remove_header', (type, kPtr, kLen) => {
    removeAll(maps[type], text(kPtr, kLen));
    return OK;
  }),
  proxy_get_current_time_nanoseconds: counted('clock', (retPtr) => {
    view().setBigUint64(retPtr, BigInt(Date.now()) * 1_000_000n, true);
    return OK;
  }),
  proxy_increment_metric: counted('increment_metric', () => OK),
  proxy_record_metric: counted('record_metric', () => OK),
  proxy_get_shared_data: counted('get_shared_data', (kPtr, kLen, retPtr, retLen, retCas) => {
    const entry = shared.get(text(kPtr, kLen));
    if (!entry) return NOT_FOUND;
    view().setUint32(retCas, entry.cas, true);
    return give(entry.value, retPtr, retLen);
  }),
  proxy_set_shared_data: counted('set_shared_data', (kPtr, kLen, vPtr, vLen, cas) => {
    const key = text(kPtr, kLen);
    const entry = shared.get(key);
    if (cas !== 0 && entry && entry.cas !== cas) return CAS_MISMATCH;
    shared.set(key, { value: Buffer.from(bytes().slice(vPtr, vPtr + vLen)), cas: nextCas++ });
    return OK;
  }),
  proxy_get_property: counted('get_property', () => NOT_FOUND),
  proxy_send_local_response: (status) => {
    throw new Error(`the plugin answered the request itself (${status})`);
  },
};
// Anything else (gRPC, queues, HTTP calls) is off the measured path: counted, refused.
const env = new Proxy(host, {
  get: (target, name) => target[name] || counted(String(name), () => NOT_FOUND),
});

const wasi = new WASI({ version: 'preview1', args: [], env: {} });
const module = new WebAssembly.Module(readFileSync(wasmPath));
const instance = new WebAssembly.Instance(module, {
  env,
  wasi_snapshot_preview1: wasi.wasiImport,
});
exports_ = instance.exports;
wasi.initialize(instance);

const ROOT = 1;
exports_.proxy_on_context_create(ROOT, 0);
exports_.proxy_on_vm_start(ROOT, 0);
if (!exports_.proxy_on_configure(ROOT, config.length)) {
  throw new Error('the plugin refused its configuration');
}

// The request and response of `meshguard-bench plugins`.
function request(id) {
  maps[0] = [
    [':authority', '127.0.0.1:10000'], [':path', '/healthz'], [':method', 'GET'],
    [':scheme', 'http'], ['user-agent', 'wrk'], ['authorization', `Bearer ${token}`],
    ['x-auth-sub', 'bench-user'], ['x-auth-tier', 'enterprise'], ['x-forwarded-proto', 'http'],
    ['x-request-id', 'a8e3c0de-6f1e-4a53-9d0f-0123456789ab'],
  ];
  maps[2] = [
    [':status', '200'], ['content-length', '2'], ['content-type', 'text/plain'],
    ['date', 'Thu, 26 Nov 2026 22:00:00 GMT'], ['server', 'envoy'],
  ];
  exports_.proxy_on_context_create(id, ROOT);
  if (exports_.proxy_on_request_headers(id, maps[0].length, 0) !== 0) {
    throw new Error('the plugin paused the request');
  }
  exports_.proxy_on_response_headers(id, maps[2].length, 0);
  // As Envoy does, a callback the module does not export is not called.
  exports_.proxy_on_response_body?.(id, 2, 1);
  exports_.proxy_on_log?.(id);
  exports_.proxy_on_done?.(id);
  exports_.proxy_on_delete(id);
}

for (let i = 0; i < warmUp; i++) request(ROOT + 1 + i);
for (const name of Object.keys(calls)) delete calls[name];
for (let i = 0; i < requests; i++) request(ROOT + 1 + warmUp + i);
const perRequest = Object.entries(calls).map(([name, n]) => `${name} ${(n / requests).toFixed(2)}`);
console.log(`host calls per request: ${perRequest.join(', ')}`);
