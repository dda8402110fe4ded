const DEFAULT_PORTS: Record<string, number> = { http: 80, https: 443 };

/**
 * A mint URL in its normalised form, the worker's spelling (which it echoes in its answers):
 * surrounding whitespace trimmed, trailing `/` of the path stripped, scheme and host lowercased
 * (the path keeps its case), a default port (http 80, https 443) dropped. User info, a query or a
 * fragment is refused, as by the worker. Throws TypeError for anything that is not an http(s) URL
 * with a host; the message never repeats the URL.
 */
export function normaliseMintUrl(url: string): string {
  if (typeof url !== 'string') throw new TypeError('mint_url must be a string');
  const text = url.trim();
  const match = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^?#]*)([\s\S]*)$/.exec(text);
  if (!match || /\s/.test(text)) throw new TypeError('mint_url must be an http(s) URL with a host');
  const [, rawScheme = '', authority = '', path = '', queryOrFragment = ''] = match;
  const scheme = rawScheme.toLowerCase();
  const defaultPort = DEFAULT_PORTS[scheme];
  if (defaultPort === undefined) throw new TypeError('mint_url must be an http(s) URL with a host');
  if (authority.includes('@') || queryOrFragment !== '') {
    throw new TypeError('mint_url must not carry user info, a query or a fragment');
  }
  let host: string;
  let port: string | undefined;
  if (authority.startsWith('[')) {
    const ipv6 = /^\[([0-9A-Fa-f:.]+)\](?::(\d*))?$/.exec(authority);
    if (!ipv6) throw new TypeError('mint_url is not a valid URL');
    host = `[${ipv6[1]!.toLowerCase()}]`;
    port = ipv6[2];
  } else {
    const colon = authority.lastIndexOf(':');
    host = (colon === -1 ? authority : authority.slice(0, colon)).toLowerCase();
    port = colon === -1 ? undefined : authority.slice(colon + 1);
  }
  if (host === '' || host === '[]') throw new TypeError('mint_url must be an http(s) URL with a host');
  let portNumber: number | undefined;
  if (port !== undefined && port !== '') {
    if (!/^\d+$/.test(port) || Number(port) > 65535) throw new TypeError('mint_url is not a valid URL');
    portNumber = Number(port);
  }
  const netloc = portNumber === undefined || portNumber === defaultPort ? host : `${host}:${portNumber}`;
  return `${scheme}://${netloc}${path.replace(/\/+$/, '')}`;
}
