import { expect } from 'chai';
import { RelayHttpError } from '../../lib/errors.js';
import { UpstreamError, isAccountProblem, toRelayError, type UpstreamErrorInit } from '../../lib/upstream/index.js';

function upstream(init: Partial<UpstreamErrorInit> & Pick<UpstreamErrorInit, 'kind'>): UpstreamError {
  return new UpstreamError('test', { ambiguous: false, accountId: 'acct-1', method: 'POST', path: '/v1/videos/text2video', ...init });
}

function kling(httpStatus: number, klingCode: number, klingMessage = `message ${klingCode}`, extra: Partial<UpstreamErrorInit> = {}) {
  return upstream({ kind: 'kling', httpStatus, klingCode, klingMessage, requestId: 'req-1', ...extra });
}

describe('upstream/toRelayError', () => {
  it('passes Kling 400-class codes through as 400 with Kling code and message', () => {
    const rows: Array<[number, number]> = [
      [400, 1200], [400, 1201], [404, 1202], [404, 1203], [400, 1300], [400, 1301],
    ];
    for (const [status, code] of rows) {
      const err = toRelayError(kling(status, code, `why ${code}`));
      expect(err, String(code)).to.be.instanceOf(RelayHttpError);
      expect(err, String(code)).to.include({ status: 400, klingCode: code, message: `why ${code}` });
      expect(err.headers).to.deep.equal({});
    }
  });

  it('answers Kling rate limits (1302, 1303) with 429 and Retry-After', () => {
    for (const code of [1302, 1303]) {
      const err = toRelayError(kling(429, code, 'slow down'));
      expect(err).to.include({ status: 429, klingCode: code, message: 'slow down' });
      expect(err.headers).to.deep.equal({ 'Retry-After': '1' });
    }
    expect(toRelayError(kling(429, 1303, 'x', { retryAfter: '12' })).headers).to.deep.equal({ 'Retry-After': '12' });
    expect(toRelayError(kling(429, 1303, 'x', { retryAfter: 'Wed, 21 Oct 2026 07:28:00 GMT' })).headers['Retry-After'])
      .to.equal('Wed, 21 Oct 2026 07:28:00 GMT');
    expect(toRelayError(kling(429, 1302, 'x', { retryAfter: 'soon\r\nX-Evil: 1' })).headers).to.deep.equal({ 'Retry-After': '1' });
  });

  it('hides Kling account and auth problems behind 503 / 5001 and flags them', () => {
    const rows: Array<[number, number]> = [
      [401, 1000], [401, 1001], [401, 1002], [401, 1003], [401, 1004],
      [429, 1100], [429, 1101], [429, 1102], [403, 1103], [429, 1304],
    ];
    for (const [status, code] of rows) {
      const source = kling(status, code, 'Resource pack depleted for account 42');
      const err = toRelayError(source);
      expect(err, String(code)).to.include({ status: 503, klingCode: 5001, message: 'upstream account unavailable' });
      expect(isAccountProblem(source), String(code)).to.equal(true);
    }
  });

  it('maps Kling 5xx to 502 / 5000', () => {
    for (const [status, code] of [[500, 5000], [503, 5001], [504, 5002]] as const) {
      const source = kling(status, code);
      expect(toRelayError(source), String(code)).to.include({ status: 502, klingCode: 5000 });
      expect(isAccountProblem(source)).to.equal(false);
    }
  });

  it('maps a timeout to 504 / 5002, network and bad responses to 502 / 5000', () => {
    expect(toRelayError(upstream({ kind: 'timeout', ambiguous: true }))).to.include({ status: 504, klingCode: 5002 });
    expect(toRelayError(upstream({ kind: 'network', ambiguous: true }))).to.include({ status: 502, klingCode: 5000 });
    expect(toRelayError(upstream({ kind: 'network', ambiguous: false }))).to.include({ status: 502, klingCode: 5000 });
    expect(toRelayError(upstream({ kind: 'bad_response', ambiguous: true, httpStatus: 200 }))).to.include({ status: 502, klingCode: 5000 });
  });

  it('falls back on the HTTP status for codes outside Kling table', () => {
    expect(toRelayError(kling(400, 1299, 'new rule'))).to.include({ status: 400, klingCode: 1299, message: 'new rule' });
    expect(toRelayError(kling(429, 1399))).to.include({ status: 429, klingCode: 1399 });
    expect(toRelayError(kling(401, 1005))).to.include({ status: 503, klingCode: 5001 });
    expect(isAccountProblem(kling(403, 1105))).to.equal(true);
    expect(toRelayError(kling(500, 9999))).to.include({ status: 502, klingCode: 5000 });
    expect(toRelayError(kling(200, 9999))).to.include({ status: 502, klingCode: 5000 });
  });

  it('keeps the upstream error as the cause and flags nothing else as an account problem', () => {
    const source = kling(400, 1201);
    expect(toRelayError(source).cause).to.equal(source);
    expect(isAccountProblem(upstream({ kind: 'timeout', ambiguous: true }))).to.equal(false);
    expect(isAccountProblem(kling(400, 1201))).to.equal(false);
    expect(isAccountProblem(new Error('x'))).to.equal(false);
  });
});
