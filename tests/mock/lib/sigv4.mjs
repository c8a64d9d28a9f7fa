// AWS Signature Version 4 (header form) with node:crypto: signing (for tests) and verification
// (for bedrock_mock). Canonical request as the AWS SDKs build it for non-S3 services: the path as
// sent is normalized and URI-encoded once more (so an encoded model id is double-encoded), the
// query sorted and encoded, header values trimmed with inner whitespace runs collapsed.
import crypto from 'node:crypto';

const hmac = (key, s) => crypto.createHmac('sha256', key).update(s).digest();
export const sha256hex = (b) => crypto.createHash('sha256').update(b).digest('hex');

/** RFC 3986 encoding as AWS wants it (encodeURIComponent plus !'()*). */
export const uriEncode = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** Canonical URI of a raw request path (as sent on the wire, before '?'). */
export function canonicalUri(rawPath, { doubleEncode = true } = {}) {
  if (!doubleEncode) return rawPath || '/';
  const segs = [];
  for (const s of rawPath.split('/')) {
    if (s === '' || s === '.') continue;
    if (s === '..') segs.pop(); else segs.push(s);
  }
  const norm = `/${segs.join('/')}${segs.length && rawPath.endsWith('/') ? '/' : ''}`;
  return uriEncode(norm).replace(/%2F/g, '/');
}

/** Canonical query string of a raw query (without '?'). */
export function canonicalQuery(rawQuery) {
  if (!rawQuery) return '';
  const pairs = [];
  for (const kv of rawQuery.split('&')) {
    if (!kv) continue;
    const i = kv.indexOf('=');
    const k = decodeURIComponent((i < 0 ? kv : kv.slice(0, i)).replace(/\+/g, ' '));
    const v = i < 0 ? '' : decodeURIComponent(kv.slice(i + 1).replace(/\+/g, ' '));
    if (k === 'X-Amz-Signature') continue;
    pairs.push([uriEncode(k), uriEncode(v)]);
  }
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return pairs.map(([k, v]) => `${k}=${v}`).join('&');
}

export const canonicalHeaderValue = (v) => String(Array.isArray(v) ? v.join(',') : v).trim().replace(/\s+/g, ' ');

export function canonicalRequest({ method, rawPath, rawQuery, headers, signedHeaders, payloadHash, doubleEncode = true, trimValues = true }) {
  const lower = {};
  for (const [k, v] of Object.entries(headers)) lower[k.toLowerCase()] = v;
  const canonHeaders = signedHeaders.map((h) => `${h}:${trimValues ? canonicalHeaderValue(lower[h] ?? '') : String(lower[h] ?? '')}\n`).join('');
  return [method, canonicalUri(rawPath, { doubleEncode }), canonicalQuery(rawQuery), canonHeaders, signedHeaders.join(';'), payloadHash].join('\n');
}

export function signingKey(secret, date, region, service) {
  return hmac(hmac(hmac(hmac(`AWS4${secret}`, date), region), service), 'aws4_request');
}

export function stringToSign(amzDate, scope, canonReq) {
  return ['AWS4-HMAC-SHA256', amzDate, scope, sha256hex(canonReq)].join('\n');
}

export const amzDateOf = (d = new Date()) => d.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');

/**
 * Sign a request: returns the headers to add (authorization, x-amz-date, x-amz-content-sha256 when
 * asked, x-amz-security-token when a session token is given). `url` is the full URL as it will be
 * sent (path already encoded); `headers` must include host (or it is taken from the URL).
 */
export function signRequest({ method = 'POST', url, headers = {}, body = '', accessKeyId, secretAccessKey, sessionToken, region, service = 'bedrock', date = new Date(), addContentSha = false, signed }) {
  const u = new URL(url);
  const amzDate = amzDateOf(date);
  const payloadHash = sha256hex(body);
  const h = { ...headers, host: headers.host ?? u.host, 'x-amz-date': amzDate };
  if (addContentSha) h['x-amz-content-sha256'] = payloadHash;
  if (sessionToken) h['x-amz-security-token'] = sessionToken;
  const names = (signed ?? Object.keys(h)).map((k) => k.toLowerCase()).filter((k) => k !== 'authorization' && k !== 'user-agent').sort();
  const rawPath = url.slice(u.origin.length).split('?')[0];
  const canon = canonicalRequest({ method, rawPath, rawQuery: u.search.slice(1), headers: h, signedHeaders: names, payloadHash });
  const scope = `${amzDate.slice(0, 8)}/${region}/${service}/aws4_request`;
  const sts = stringToSign(amzDate, scope, canon);
  const sig = crypto.createHmac('sha256', signingKey(secretAccessKey, amzDate.slice(0, 8), region, service)).update(sts).digest('hex');
  const out = { ...h, authorization: `AWS4-HMAC-SHA256 Credential=${accessKeyId}/${scope}, SignedHeaders=${names.join(';')}, Signature=${sig}` };
  return { headers: out, canonicalRequest: canon, stringToSign: sts, signature: sig };
}

/** Parse an AWS4-HMAC-SHA256 Authorization header; null when it is not one. */
export function parseAuthorization(v) {
  const m = /^AWS4-HMAC-SHA256\s+(.*)$/.exec(String(v || ''));
  if (!m) return null;
  const out = {};
  for (const part of m[1].split(/,\s*/)) {
    const i = part.indexOf('=');
    if (i > 0) out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  if (!out.Credential || !out.SignedHeaders || !out.Signature) return { malformed: true, ...out };
  const c = out.Credential.split('/');
  return {
    accessKeyId: c[0], date: c[1], region: c[2], service: c[3], terminator: c[4], credentialParts: c.length,
    signedHeaders: out.SignedHeaders.split(';'), signature: out.Signature,
  };
}
