// hello.wasm in JavaScript: a plain wasi:http/proxy component (no Core
// imports, so `wasmtime serve` runs the very same file), answering like the
// Rust hello: {"message": ..., "ok": true, "path": PATH}. Built by
// bench/polyglot/build.sh with the pinned componentize-js.

addEventListener('fetch', (event) => {
  const path = new URL(event.request.url).pathname;
  const body = JSON.stringify({ message: 'hello from a wasi:http component', ok: true, path });
  event.respondWith(new Response(body, { headers: { 'content-type': 'application/json' } }));
});
