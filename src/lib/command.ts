/**
 * The conventions every `cfnet` command follows, applied in one place to the whole command tree
 * (the full CLI and the agent's lean entry point alike):
 * - a usage error (unknown option, option without its value, bad choice, missing argument) prints
 *   one short line and a pointer to `--help`, and exits 2 (EXIT.invalid), never commander's 1;
 * - `--help` is `HELP_WIDTH` columns wide whatever the terminal, and ends with examples and the
 *   exit statuses (`helpFooter`).
 */
import { Command, CommanderError, Help } from 'commander';
import { ERROR_CODES, type ErrorCodeInfo } from './error-codes.js';
import { CfnetError } from './errors.js';
import { EXIT } from './exit-codes.js';
import { HELP_WIDTH, wrapText } from './settings/help.js';

/** The command's path as typed: "cfnet queue counts". */
export function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** The long flag of commander's option flags ("-f, --follow <x>" → "--follow"). */
function flagOf(flags: string): string {
  return flags.split(/[ ,|]+/).find((f) => f.startsWith('--')) ?? flags.split(/[ ,|]+/)[0] ?? flags;
}

/** Commander's error message in cfnet's words (short, the option named as typed). */
export function usageMessage(message: string, code: string): string {
  const text = message.replace(/^error: /, '');
  const quoted = /'([^']+)'/.exec(text)?.[1];
  if (code === 'commander.optionMissingArgument' && quoted) return `${flagOf(quoted)} needs a value`;
  if (code === 'commander.missingMandatoryOptionValue' && quoted) return `${flagOf(quoted)} is required`;
  return text;
}

/**
 * A help line that is too wide is a lone word (a URL, a default path) commander could not break:
 * it moves left to end at `width` (the word stays whole, so it can still be copied).
 */
export function fitLine(line: string, width = HELP_WIDTH): string {
  if (line.length <= width) return line;
  const m = /^( +)(\S+)$/.exec(line);
  if (!m) return line;
  return `${' '.repeat(Math.max(2, width - m[2]!.length))}${m[2]}`;
}

/** The narrowest description column commander still wraps (its default, 40, is too wide for 80). */
const MIN_WIDTH_TO_WRAP = 24;

function formatItem(this: Help, term: string, termWidth: number, description: string, helper: Help): string {
  return Help.prototype.formatItem
    .call(this, term, termWidth, description, helper)
    .split('\n')
    .map((l) => fitLine(l))
    .join('\n');
}

/** An error commander already reported on stderr: only its exit status is left to set. */
export class ReportedExit extends CommanderError {}

/**
 * cfnet's command class: subcommands made by `.command()` are of it too, so every command words its
 * usage errors the same way and exits 2 with them.
 */
export class CfnetCommand extends Command {
  override createCommand(name?: string): Command {
    return new CfnetCommand(name);
  }

  override error(message: string, errorOptions?: { code?: string; exitCode?: number }): never {
    const code = errorOptions?.code ?? 'commander.error';
    return super.error(`${commandPath(this)}: ${usageMessage(message, code)}`, {
      code,
      exitCode: EXIT.invalid,
    });
  }
}

/**
 * Applies the conventions to `root` and every command under it (call it once every command is
 * registered): help width, the `--help` pointer after a usage error, and errors thrown (not
 * `process.exit`) so the caller sets the exit status (`exitStatusOf`).
 */
export function applyCommandConventions(root: Command): void {
  const visit = (c: Command): void => {
    // settings' long flags (e.g. --controller-source-address <ip>) leave descriptions under
    // commander's default 40 columns, below which it would not wrap them at all
    c.configureHelp({
      ...c.configureHelp(),
      helpWidth: HELP_WIDTH,
      minWidthToWrap: MIN_WIDTH_TO_WRAP,
      formatItem,
    });
    c.showHelpAfterError(`(see '${commandPath(c)} --help')`);
    c.exitOverride((err) => {
      // help and version are not errors; commander's bare-group help (`cfnet queue`) is a usage error
      const status =
        err.code === 'commander.helpDisplayed' || err.code === 'commander.version' ? EXIT.ok : EXIT.invalid;
      throw new ReportedExit(status, err.code, err.message);
    });
    for (const sub of c.commands) visit(sub);
  };
  visit(root);
}

/**
 * The exit status of an error that ended the parse or an action: `ReportedExit` carries its own;
 * a commander error thrown by an action (e.g. InvalidArgumentError) is a usage error, and a
 * CfnetError has the status of its code (src/lib/error-codes.ts): both reported here. Anything
 * else is unexpected: `undefined`, the caller reports it (and exits EXIT.error).
 */
export function exitStatusOf(err: unknown, stderr: (text: string) => void): number | undefined {
  if (err instanceof ReportedExit) return err.exitCode;
  if (err instanceof CommanderError) {
    stderr(`cfnet: ${usageMessage(err.message, err.code)}\n`);
    return EXIT.invalid;
  }
  if (err instanceof CfnetError) {
    stderr(`cfnet: ${err.message}\n`);
    return (ERROR_CODES[err.code] as ErrorCodeInfo).exit ?? EXIT.error;
  }
  return undefined;
}

/**
 * Adds the end of a command's `--help`: "Examples:" (one command line each, with an optional
 * comment after `#`; each must fit HELP_WIDTH) and the exit statuses, wrapped at HELP_WIDTH.
 */
export function helpFooter(
  cmd: Command,
  o: { examples: readonly string[]; exit?: string; notes?: string },
): Command {
  const parts = ['', 'Examples:', ...o.examples.map((e) => `  ${e}`)];
  if (o.notes) parts.push('', wrapText(o.notes));
  if (o.exit) parts.push('', wrapText(o.exit));
  return cmd.addHelpText('after', parts.join('\n'));
}
