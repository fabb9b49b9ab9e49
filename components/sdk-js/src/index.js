// @hms/sdk: write an hms service in JavaScript.
//
//   import { service, json, HttpError, store, log } from '@hms/sdk';
//   const app = service({ name: 'greeter', routes: ['/greet/...'] });
//   app.get('/greet/{name}', (req, { params }) => ({ greeting: `Hello, ${params.name}` }));
//   export default app;
//
// Build with `hms-build app.js -o greeter.wasm`; test on plain Node with
// `useFakeCore()` from '@hms/sdk/testing'.

export { Router, toResponse } from './router.js';
export { Service, service } from './service.js';
export { json, error, readJson, readText, bearerToken, pathOf } from './http.js';
export * from './errors.js';
export { call, joinUrl } from './call.js';
export { installCore } from './core.js';
export * as store from './store.js';
export * as log from './log.js';
export * as auth from './auth.js';
export * as registry from './registry.js';
