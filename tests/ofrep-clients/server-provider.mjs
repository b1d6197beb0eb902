// @openfeature/server-sdk + @openfeature/ofrep-provider against a Tailor server: single-flag
// evaluation of every flag type, reasons, errors, both header forms and a wrong key.
// Run by tests/integration/ofrep.rs (see common.mjs for the protocol).
import { OpenFeature } from '@openfeature/server-sdk';
import { OFREPProvider } from '@openfeature/ofrep-provider';
import { settings, emit, recordingFetch, plain } from './common.mjs';

const { url, key } = settings();
const log = [];

async function client(domain, headers) {
  const provider = new OFREPProvider({ baseUrl: url, headers, fetchImplementation: recordingFetch(log) });
  await OpenFeature.setProviderAndWait(domain, provider);
  return OpenFeature.getClient(domain);
}

const bearer = await client('bearer', [['Authorization', `Bearer ${key}`]]);
const apiKey = await client('x-api-key', [['X-API-Key', key]]);
const wrong = await client('wrong-key', [['Authorization', 'Bearer tlr_sdk_not_a_key']]);

const pro = {
  targetingKey: 'user-1',
  plan: 'pro',
  address: { city: 'Oslo', geo: { lat: 59.9 } },
  scores: [1, 2],
  tags: ['a', 'b'],
};
const free = { targetingKey: 'user-2', plan: 'free' };
const anonymous = { plan: 'pro' };

const results = {
  banner: plain(await bearer.getBooleanDetails('banner', false, pro)),
  bannerFree: plain(await bearer.getBooleanDetails('banner', true, free)),
  static: plain(await bearer.getBooleanDetails('static', true, pro)),
  headline: plain(await bearer.getStringDetails('headline', 'fallback', pro)),
  limit: plain(await bearer.getNumberDetails('limit', -1, pro)),
  ratio: plain(await bearer.getNumberDetails('ratio', -1, pro)),
  ratioElsewhere: plain(await bearer.getNumberDetails('ratio', -1, free)),
  theme: plain(await bearer.getObjectDetails('theme', {}, pro)),
  killed: plain(await bearer.getBooleanDetails('killed', true, pro)),
  missing: plain(await bearer.getBooleanDetails('nope', true, pro)),
  wrongType: plain(await bearer.getBooleanDetails('headline', true, pro)),
  staticNoKey: plain(await bearer.getBooleanDetails('static', true, anonymous)),
  bannerNoKey: plain(await bearer.getBooleanDetails('banner', false, anonymous)),
  headlineNoKey: plain(await bearer.getStringDetails('headline', 'fallback', anonymous)),
  xApiKey: plain(await apiKey.getBooleanDetails('banner', false, pro)),
  wrongKey: plain(await wrong.getBooleanDetails('static', true, pro)),
};
await OpenFeature.close();
emit('done', { results, requests: log });
