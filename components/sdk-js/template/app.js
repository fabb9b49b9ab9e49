// {{name}}: an hms service in JavaScript, written with @hms/sdk.
//
//   GET /{{name}}/hello/{who}   {"greeting": "Hello, <who>", "count": N}
//
// Handlers get the fetch Request and {params, rest, path, query, json()};
// they return a Response, a value (sent as JSON) or nothing (204), and throw
// HttpError(status, code, message) to answer with {"code","message"}. Any
// other exception is a 500 and one error event in the audit log.

import { HttpError, log, service, store } from '@hms/sdk';

const app = service({ name: '{{name}}', routes: ['/{{name}}/...'] });

app.get('/{{name}}/hello/{who}', (req, { params }) => {
  if (params.who.length > 64) throw new HttpError(400, 'bad_request', 'a name has at most 64 characters');
  const count = store.increment(`greeted/${params.who}`);
  log.info(`greeted ${params.who} (${count} times)`);
  return { greeting: `Hello, ${params.who}`, count };
});

export default app;
