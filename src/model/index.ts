/** cfnet's domain model: types, CF wire-format parsers and pure rule-set logic. */
export * from './asg-rule.js';
export * from './canonical.js';
export * from './config.js';
export * from './errors.js';
export * from './identifiers.js';
export * from './ip.js';
export * from './policy.js';
export * from './ports.js';
export * from './ruleset.js';
export * from './security-group.js';
export * from './types.js';
