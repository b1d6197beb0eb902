// Shared by the Node OFREP client programs: settings from the environment, a fetch that
// records every exchange, and evaluation details as plain JSON.
//
// Protocol with tests/integration/ofrep.rs: one JSON object per stdout line, each with an
// `event`; the last is `{"event": "done", "results": {...}}`.

/** The server's base URL and key, from OFREP_URL and OFREP_KEY. */
export function settings() {
  const url = process.env.OFREP_URL;
  const key = process.env.OFREP_KEY;
  if (!url || !key) {
    throw new Error('set OFREP_URL (the Tailor server) and OFREP_KEY (an SDK or client key)');
  }
  return { url, key };
}

/** Writes one protocol line. */
export function emit(event, fields = {}) {
  process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);
}

/** A fetch that records each request's auth headers and each response's status and body. */
export function recordingFetch(log) {
  return async (input, init) => {
    const request = new Request(input, init);
    const requestBody = await request.clone().text();
    const response = await fetch(request);
    const body = await response.clone().text();
    log.push({
      url: new URL(request.url).pathname,
      authorization: request.headers.get('authorization'),
      xApiKey: request.headers.get('x-api-key'),
      ifNoneMatch: request.headers.get('if-none-match'),
      requestBody,
      status: response.status,
      etag: response.headers.get('etag'),
      contentType: response.headers.get('content-type'),
      body,
    });
    return response;
  };
}

/** The parts of OpenFeature evaluation details the test compares. */
export function plain(details) {
  return {
    value: details.value ?? null,
    variant: details.variant ?? null,
    reason: details.reason ?? null,
    errorCode: details.errorCode ?? null,
    errorMessage: details.errorMessage ?? null,
    flagMetadata: details.flagMetadata ?? {},
  };
}

/** The message of an error and of each of its causes. */
export function describe(error) {
  const parts = [];
  for (let e = error; e; e = e.cause) {
    parts.push(`${e.name ?? 'Error'}: ${e.message ?? String(e)}`);
  }
  return parts.join(' <- ');
}

/** Resolves once `condition()` holds, checking every 50 ms; rejects after `ms`. */
export async function until(what, condition, ms = 10000) {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The next line on stdin. */
export function nextLine() {
  return new Promise((resolve) => {
    let buffered = '';
    const onData = (chunk) => {
      buffered += chunk;
      const end = buffered.indexOf('\n');
      if (end >= 0) {
        process.stdin.off('data', onData);
        process.stdin.pause();
        resolve(buffered.slice(0, end));
      }
    };
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', onData);
    process.stdin.resume();
  });
}
