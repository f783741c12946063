import { expect } from 'chai';
import { signatureHeaders, verifySignature } from '../../lib/callbacks/signing.js';

/** Kling's published example of a signed callback. */
const VECTOR = {
  secret: 'whsec_dGVzdHNlY3JldHRlc3RzZWNyZXR0ZXN0c2VjcmV0MTI=',
  id: '9876543210',
  timestamp: 1781080794,
  body: '{"id":"1234567890","status":"succeeded","message":"","create_time":1781080778802,"update_time":1781080794151}',
  signature: 'v1,UsKlJP00XoQyOn410NM9xv34sP+Gl0jnOO9Lcpr7NJ4=',
};
const OTHER = `whsec_${Buffer.from('another-secret-another-secret-xx').toString('base64')}`;

const headers = (signature: string, timestamp = VECTOR.timestamp) => ({ 'webhook-id': VECTOR.id, 'webhook-timestamp': String(timestamp), 'webhook-signature': signature });

describe('Standard Webhooks verification of Kling callbacks', () => {
  it("verifies Kling's official test vector, and signs it to the same value", () => {
    expect(verifySignature([VECTOR.secret], headers(VECTOR.signature), Buffer.from(VECTOR.body, 'utf8'), VECTOR.timestamp)).to.equal('valid');
    expect(signatureHeaders(VECTOR.secret, VECTOR.id, VECTOR.timestamp, VECTOR.body)['webhook-signature']).to.equal(VECTOR.signature);
  });

  it('takes any matching v1 signature of several, from the current or the previous secret, and nothing else', () => {
    const body = Buffer.from(VECTOR.body, 'utf8');
    const now = VECTOR.timestamp;
    // A rotation: both signatures in the header, and an unknown version beside them.
    expect(verifySignature([OTHER, VECTOR.secret], headers(`v2,abc v1,${'A'.repeat(44)} ${VECTOR.signature}`), body, now)).to.equal('valid');
    expect(verifySignature([OTHER], headers(VECTOR.signature), body, now)).to.equal('mismatch');
    expect(verifySignature([VECTOR.secret], headers(`v2,${VECTOR.signature.slice(3)}`), body, now)).to.equal('mismatch');
    expect(verifySignature([VECTOR.secret], headers(VECTOR.signature.slice(0, -2)), body, now)).to.equal('mismatch');
    expect(verifySignature([VECTOR.secret], headers(VECTOR.signature), Buffer.from(`${VECTOR.body} `, 'utf8'), now)).to.equal('mismatch');
    // Within five minutes either way, and not a second more.
    expect(verifySignature([VECTOR.secret], headers(VECTOR.signature), body, now + 300)).to.equal('valid');
    expect(verifySignature([VECTOR.secret], headers(VECTOR.signature), body, now - 300)).to.equal('valid');
    expect(verifySignature([VECTOR.secret], headers(VECTOR.signature), body, now + 301)).to.equal('stale');
    expect(verifySignature([VECTOR.secret], headers(VECTOR.signature), body, now - 301)).to.equal('stale');
    expect(verifySignature([VECTOR.secret], headers(VECTOR.signature, Number.NaN), body, now)).to.equal('stale');
    expect(verifySignature([VECTOR.secret], {}, body, now)).to.equal('unsigned');
    expect(verifySignature([VECTOR.secret], { 'webhook-id': VECTOR.id, 'webhook-timestamp': String(now) }, body, now)).to.equal('unsigned');
  });
});
