/**
 * `cfnet agent --check`: the files the agent's settings name, checked the way the agent will use
 * them, without starting anything. A problem is a SettingsError naming the setting (exit 2), so an
 * operator finds a wrong path or a mismatched key before the agent is deployed, not in its log.
 *
 * - caCert: readable, a certificate.
 * - clientCert / clientKey: a certificate and its private key that name this cell and have not
 *   expired (the rule of identity.ts). With bootstrapTokenFile they may be absent or unusable: the
 *   agent then asks the controller for a new certificate at start, as it would.
 * - bootstrapTokenFile: when the cell has no usable certificate, readable and not empty (else the
 *   agent could not ask for one).
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { SettingsError, settingLabel } from '../lib/settings/index.js';
import { AGENT_TABLE, type AgentConfig } from './config.js';
import { unusableBecause } from './identity.js';

/** What `--check` found, one line per setting it looked at. */
export type AgentCheckSummary = Array<{ setting: keyof AgentConfig; path: string; found: string }>;

function fail(key: keyof AgentConfig, path: string, reason: string): SettingsError {
  return new SettingsError(`setting ${settingLabel(AGENT_TABLE, key)}: cannot use ${path}: ${reason}`, {
    setting: key,
    path,
  });
}

/** The file's text, or null when it does not exist and `optional`. */
function read(key: keyof AgentConfig, path: string, optional: boolean): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if (optional && (err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw fail(key, path, (err as Error).message);
  }
}

function certificate(key: keyof AgentConfig, path: string, text: string): X509Certificate {
  try {
    return new X509Certificate(text);
  } catch (err) {
    throw fail(key, path, `not a PEM certificate (${(err as Error).message})`);
  }
}

function described(cert: X509Certificate): string {
  const subject = cert.subject.replaceAll('\n', ', ');
  return `certificate ${subject}, valid until ${new Date(cert.validTo).toISOString()}`;
}

/** Checks every file the settings name; throws SettingsError naming the first bad one. */
export function checkAgentFiles(c: AgentConfig, now = Date.now()): AgentCheckSummary {
  const out: AgentCheckSummary = [];
  const ca = certificate('caCert', c.caCert, read('caCert', c.caCert, false)!);
  out.push({ setting: 'caCert', path: c.caCert, found: described(ca) });

  const bootstrap = c.bootstrapTokenFile !== '';
  const certText = read('clientCert', c.clientCert, bootstrap);
  const keyText = read('clientKey', c.clientKey, bootstrap);
  // the agent's own rule (identity.ts): a pair that names this cell and has not expired
  const unusable =
    certText === null || keyText === null ? 'absent' : unusableBecause(certText, keyText, c.cellId, now);
  if (unusable !== null && !bootstrap) {
    const key = /^key/.test(unusable) || /belong/.test(unusable) ? 'clientKey' : 'clientCert';
    throw fail(key, key === 'clientKey' ? c.clientKey : c.clientCert, unusable);
  }
  if (unusable === null) {
    out.push({ setting: 'clientCert', path: c.clientCert, found: described(new X509Certificate(certText!)) });
    out.push({ setting: 'clientKey', path: c.clientKey, found: 'the private key of clientCert' });
  } else {
    const found = `${unusable}: the agent requests a new certificate with its bootstrap token`;
    out.push({ setting: 'clientCert', path: c.clientCert, found });
  }

  if (bootstrap) {
    const token = read('bootstrapTokenFile', c.bootstrapTokenFile, unusable === null);
    if (unusable !== null && token !== null && token.trim() === '') {
      throw fail('bootstrapTokenFile', c.bootstrapTokenFile, 'empty, and the cell has no usable certificate');
    }
    out.push({
      setting: 'bootstrapTokenFile',
      path: c.bootstrapTokenFile,
      found: token === null ? 'absent (not needed while the certificate is usable)' : 'holds a token',
    });
  }
  return out;
}
