/**
 * A PKCS#10 certificate signing request made with node:crypto alone (the agent makes one per
 * renewal and must not load node-forge, which costs it memory): subject CN, the key's public half,
 * no attributes, signed SHA-256 with RSA. Checking and signing requests is lib/tls.ts's job.
 */
import { createPrivateKey, createPublicKey, sign } from 'node:crypto';

function len(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v >>= 8) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([tag]), len(body.length), body]);
}

const seq = (...p: Buffer[]) => tlv(0x30, ...p);
/** 2.5.4.3 commonName */
const OID_CN = Buffer.from([0x06, 0x03, 0x55, 0x04, 0x03]);
/** 1.2.840.113549.1.1.11 sha256WithRSAEncryption */
const OID_SHA256_RSA = Buffer.from([0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b]);

/** PEM CSR for `keyPem` (RSA) asking for subject CN = `cn`. */
export function makeCsr(keyPem: string, cn: string): string {
  const key = createPrivateKey(keyPem);
  if (key.asymmetricKeyType !== 'rsa') throw new Error('only RSA keys are supported');
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  const name = seq(tlv(0x31, seq(OID_CN, tlv(0x0c, Buffer.from(cn, 'utf8')))));
  const info = seq(tlv(0x02, Buffer.from([0])), name, spki, tlv(0xa0));
  const signature = sign('sha256', info, key);
  const der = seq(
    info,
    seq(OID_SHA256_RSA, Buffer.from([0x05, 0x00])),
    tlv(0x03, Buffer.from([0]), signature),
  );
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n');
  return `-----BEGIN CERTIFICATE REQUEST-----\n${b64.replace(/\n$/, '')}\n-----END CERTIFICATE REQUEST-----\n`;
}
