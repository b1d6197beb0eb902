// @openfeature/web-sdk + @openfeature/ofrep-web-provider against a Tailor server, in Node
// (fetch and the timers are all the provider needs): bulk evaluation with no user, then with
// one, polling with the ETag (304), and a config change picked up by the next poll.
// Run by tests/integration/ofrep.rs (see common.mjs for the protocol).
import { OpenFeature, ProviderEvents } from '@openfeature/web-sdk';
import { OFREPWebProvider } from '@openfeature/ofrep-web-provider';
import { settings, emit, recordingFetch, plain, describe, until, nextLine } from './common.mjs';

const { url, key } = settings();
const log = [];
const provider = new OFREPWebProvider({
  baseUrl: url,
  headers: [['Authorization', `Bearer ${key}`]],
  fetchImplementation: recordingFetch(log),
  pollInterval: 200,
  cacheMode: 'disabled',
});

function evaluateAll(client) {
  return {
    banner: plain(client.getBooleanDetails('banner', false)),
    static: plain(client.getBooleanDetails('static', true)),
    headline: plain(client.getStringDetails('headline', 'fallback')),
    limit: plain(client.getNumberDetails('limit', -1)),
    ratio: plain(client.getNumberDetails('ratio', -1)),
    theme: plain(client.getObjectDetails('theme', {})),
    killed: plain(client.getBooleanDetails('killed', true)),
    missing: plain(client.getBooleanDetails('nope', true)),
  };
}

const results = {};
const client = OpenFeature.getClient();
let changes = 0;
client.addHandler(ProviderEvents.ConfigurationChanged, () => {
  changes += 1;
});

// No user yet: the page before sign-in sends `{"context": {}}`.
try {
  await OpenFeature.setProviderAndWait(provider);
  results.ready = true;
} catch (error) {
  results.ready = false;
  results.readyError = describe(error);
}
results.providerStatus = client.providerStatus;
results.noUser = evaluateAll(client);

// Signed in.
await OpenFeature.setContext({
  targetingKey: 'user-1',
  plan: 'pro',
  address: { city: 'Oslo', geo: { lat: 59.9 } },
  scores: [1, 2],
});
results.user = evaluateAll(client);

// Polling sends the ETag back and gets 304 while nothing changed.
await until('a poll answered 304', () => log.some((r) => r.status === 304));
emit('polled');

// The test changes the config, then says so; the next poll picks it up.
emit('waiting');
await nextLine();
const before = changes;
await until('a configuration change', () => changes > before);
results.afterChange = plain(client.getBooleanDetails('banner', true));

await OpenFeature.close();
emit('done', { results, requests: log });
process.exit(0);
