import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { helpFooter } from '../lib/command.js';
import { ValidationError } from '../lib/errors.js';
import { EXIT, exitHelp } from '../lib/exit-codes.js';
import { parseCapiRules } from '../model/asg-rule.js';
import { normalizeRules, ruleSetHash } from '../model/canonical.js';
import { parseInternalSecurityGroups } from '../model/policy.js';
import { parseCapiV3SecurityGroup } from '../model/security-group.js';
import type { EgressRule, SecurityGroup } from '../model/types.js';

export type AsgDocumentFormat =
  | 'capi-rules'
  | 'capi-v3-security-group'
  | 'capi-v3-security-group-list'
  | 'capi-v2-security-group'
  | 'capi-v2-security-group-list'
  | 'policy-server-security-groups';

export interface ValidatedGroup {
  guid?: string;
  name?: string;
  hash: string;
  rules: EgressRule[];
}

export interface AsgValidateResult {
  format: AsgDocumentFormat;
  groups: ValidatedGroup[];
}

export interface AsgValidateOptions {
  allowUnknownKeys?: boolean;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function fromRules(rules: EgressRule[], extra: { guid?: string; name?: string } = {}): ValidatedGroup {
  return { ...extra, hash: ruleSetHash(rules), rules: normalizeRules(rules) };
}

function fromGroup(g: SecurityGroup): ValidatedGroup {
  return fromRules(g.rules, { guid: g.guid, name: g.name });
}

function v2Group(resource: unknown, path: string, opts: AsgValidateOptions): ValidatedGroup {
  if (!isPlainObject(resource) || !isPlainObject(resource.entity)) {
    throw new ValidationError(path || 'resource', resource, 'a v2 resource must be {metadata, entity}');
  }
  const meta = isPlainObject(resource.metadata) ? resource.metadata : {};
  const entity = resource.entity;
  const extra: { guid?: string; name?: string } = {};
  if (typeof meta.guid === 'string') extra.guid = meta.guid;
  if (typeof entity.name === 'string') extra.name = entity.name;
  const prefix = path ? `${path}.` : '';
  return fromRules(parseCapiRules(entity.rules ?? [], { ...opts, path: `${prefix}entity.rules` }), extra);
}

/**
 * Validate one JSON document holding ASG rules, in any of the shapes CF produces:
 * a CAPI rules array, a v3 security group (or a v3 list page), a v2 security group resource (or a
 * v2 list page), or a policy-server internal `security_groups` response. Throws ValidationError.
 */
export function validateAsgDocument(text: string, opts: AsgValidateOptions = {}): AsgValidateResult {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new ValidationError(
      'document',
      text.length > 60 ? `${text.slice(0, 60)}…` : text,
      `not valid JSON (${(err as Error).message})`,
    );
  }
  if (Array.isArray(doc)) {
    return { format: 'capi-rules', groups: [fromRules(parseCapiRules(doc, opts))] };
  }
  if (!isPlainObject(doc)) {
    throw new ValidationError('document', doc, 'expected a rules array or a security group document');
  }
  if ('security_groups' in doc) {
    const page = parseInternalSecurityGroups(doc);
    return { format: 'policy-server-security-groups', groups: page.groups.map(fromGroup) };
  }
  if (Array.isArray(doc.resources)) {
    const resources = doc.resources as unknown[];
    const v2 = resources.length > 0 && isPlainObject(resources[0]) && 'entity' in resources[0];
    if (v2) {
      return {
        format: 'capi-v2-security-group-list',
        groups: resources.map((r, i) => v2Group(r, `resources[${i}]`, opts)),
      };
    }
    return {
      format: 'capi-v3-security-group-list',
      groups: resources.map((r, i) =>
        fromGroup(parseCapiV3SecurityGroup(r, { ...opts, path: `resources[${i}]` })),
      ),
    };
  }
  if ('entity' in doc) return { format: 'capi-v2-security-group', groups: [v2Group(doc, '', opts)] };
  if ('rules' in doc) {
    return { format: 'capi-v3-security-group', groups: [fromGroup(parseCapiV3SecurityGroup(doc, opts))] };
  }
  throw new ValidationError(
    'document',
    Object.keys(doc),
    'not a recognised ASG document (expected a rules array, a v3/v2 security group, or a policy-server security_groups response)',
  );
}

async function readSource(source: string): Promise<string> {
  if (source !== '-') return readFile(source, 'utf8');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export function registerModelCommands(program: Command): void {
  const asg = program.command('asg').description('Application security group (egress rule) tools');
  helpFooter(asg, {
    examples: ['cfnet asg validate rules.json', 'cf curl /v3/security_groups | cfnet asg validate -'],
  });
  const validate = asg
    .command('validate')
    .description(
      'Validate ASG rules the way CAPI v3 does; print them normalised (JSON) with their content hash',
    )
    .addHelpText(
      'after',
      [
        '',
        'Input (JSON, detected by shape):',
        '  - a CAPI rules array:',
        '    [{"protocol":"tcp","destination":"10.0.0.0/24","ports":"443"}]',
        '  - a CAPI v3 security group resource, or a v3 list page {"resources":[...]}',
        '  - a CAPI v2 security group resource {"metadata","entity"}, or a v2 list page',
        '  - a policy-server internal security_groups response {"next","security_groups"}',
      ].join('\n'),
    )
    .argument('<file>', 'JSON file to validate, or "-" to read standard input')
    .option('--allow-unknown-keys', 'accept rule keys that CAPI v3 rejects with "unknown field(s)"', false)
    .option('--compact', 'print the result as one line of JSON instead of indented JSON', false);
  helpFooter(validate, {
    examples: [
      'cfnet asg validate rules.json',
      'cf curl /v3/security_groups | cfnet asg validate - --compact',
    ],
    exit: exitHelp(['ok', 'error', 'invalid'], {
      ok: 'valid',
      error: 'the file could not be read',
      invalid: 'invalid (the message names the field, e.g. rules[2].ports)',
    }),
  }).action(async (file: string, options: { allowUnknownKeys: boolean; compact: boolean }) => {
    let text: string;
    try {
      text = await readSource(file);
    } catch (err) {
      process.stderr.write(`cfnet asg validate: cannot read ${file}: ${(err as Error).message}\n`);
      process.exitCode = EXIT.error;
      return;
    }
    try {
      const result = validateAsgDocument(text, { allowUnknownKeys: options.allowUnknownKeys });
      process.stdout.write(`${JSON.stringify(result, null, options.compact ? undefined : 2)}\n`);
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      process.stderr.write(`cfnet asg validate: ${err.message} (field: ${err.field})\n`);
      process.exitCode = EXIT.invalid;
    }
  });
}
