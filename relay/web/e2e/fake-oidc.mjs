// A minimal OpenID Connect provider for the browser test, on a loopback port: discovery,
// authorize (approves at once as `user`), token (single-use codes, PKCE S256 checked, client
// secret checked), userinfo and JWKS, with ES256 ID tokens signed by a key made per run.
// Node's own http and crypto only, so the test needs nothing beyond playwright-core.
import { createServer } from 'node:http';
import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';

const b64url = (buf) => Buffer.from(buf).toString('base64url');

export async function startFakeOidc({ clientId, clientSecret, user }) {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'e2e-1', alg: 'ES256', use: 'sig' };
  const codes = new Map();
  const tokens = new Map();
  let issuer = '';

  const signJwt = (claims) => {
    const header = b64url(JSON.stringify({ alg: 'ES256', typ: 'JWT', kid: 'e2e-1' }));
    const body = b64url(JSON.stringify(claims));
    const signature = sign('sha256', Buffer.from(`${header}.${body}`),
      { key: privateKey, dsaEncoding: 'ieee-p1363' });
    return `${header}.${body}.${b64url(signature)}`;
  };
  const json = (res, status, value) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(value));
  };
  const readBody = (req) => new Promise((resolve, reject) => {
    let data = '';
    req.on('data', (chunk) => { data += chunk; if (data.length > 65536) req.destroy(); });
    req.on('end', () => resolve(data));
    req.on('error', reject);
  });

  const server = createServer(async (req, res) => {
    const url = new URL(req.url, issuer);
    if (url.pathname === '/.well-known/openid-configuration') {
      return json(res, 200, {
        issuer,
        authorization_endpoint: `${issuer}/authorize`,
        token_endpoint: `${issuer}/token`,
        userinfo_endpoint: `${issuer}/userinfo`,
        jwks_uri: `${issuer}/jwks`,
        response_types_supported: ['code'],
        code_challenge_methods_supported: ['S256'],
        token_endpoint_auth_methods_supported: ['client_secret_basic'],
      });
    }
    if (url.pathname === '/jwks') return json(res, 200, { keys: [jwk] });
    if (url.pathname === '/authorize') {
      const q = url.searchParams;
      if (q.get('client_id') !== clientId || q.get('code_challenge_method') !== 'S256') {
        return json(res, 400, { error: 'invalid_request' });
      }
      const code = b64url(randomBytes(24));
      codes.set(code, { challenge: q.get('code_challenge'), nonce: q.get('nonce'),
        redirect: q.get('redirect_uri'), used: false });
      const back = new URL(q.get('redirect_uri'));
      back.searchParams.set('code', code);
      back.searchParams.set('state', q.get('state'));
      res.writeHead(302, { location: back.toString() });
      return res.end();
    }
    if (url.pathname === '/token' && req.method === 'POST') {
      const form = new URLSearchParams(await readBody(req));
      const basic = `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`;
      if (req.headers.authorization !== basic) return json(res, 401, { error: 'invalid_client' });
      const grant = codes.get(form.get('code'));
      if (!grant || grant.used) return json(res, 400, { error: 'invalid_grant' });
      grant.used = true;
      const challenge = b64url(createHash('sha256').update(form.get('code_verifier') ?? '').digest());
      if (challenge !== grant.challenge || form.get('redirect_uri') !== grant.redirect) {
        return json(res, 400, { error: 'invalid_grant' });
      }
      const now = Math.floor(Date.now() / 1000);
      const accessToken = b64url(randomBytes(24));
      tokens.set(accessToken, user);
      return json(res, 200, {
        access_token: accessToken, token_type: 'Bearer', expires_in: 300,
        id_token: signJwt({ iss: issuer, aud: clientId, sub: user.sub, nonce: grant.nonce,
          email: user.email, email_verified: true, iat: now, exp: now + 300 }),
      });
    }
    if (url.pathname === '/userinfo') {
      const found = tokens.get((req.headers.authorization ?? '').replace(/^Bearer /, ''));
      if (!found) return json(res, 401, { error: 'invalid_token' });
      return json(res, 200, { sub: found.sub, email: found.email, email_verified: true });
    }
    json(res, 404, { error: 'not_found' });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${server.address().port}`;
  return { issuer, close: () => new Promise((resolve) => server.close(resolve)) };
}
