/** Where the package's warnings go. Fields never hold a secret (Ys are cut to a prefix). */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** JSON lines on stderr from `level` up (default warn); `PROOFRECON_CLIENT_LOG_LEVEL` overrides. */
export function jsonLogger(level: Level = envLevel() ?? 'warn'): Logger {
  const at = (l: Level) => (message: string, fields?: Record<string, unknown>) => {
    if (ORDER[l] < ORDER[level]) return;
    process.stderr.write(
      JSON.stringify({ ts: new Date().toISOString(), level: l, logger: 'proofrecon-client', message, ...fields }) +
        '\n',
    );
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

function envLevel(): Level | undefined {
  const value = process.env.PROOFRECON_CLIENT_LOG_LEVEL?.toLowerCase();
  return value && value in ORDER ? (value as Level) : undefined;
}

/** A logger that drops everything. */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
