/**
 * A mint URL in its normalised form, identical to the worker's: whitespace trimmed, trailing `/`
 * stripped, scheme and host lowercased (the path is kept as it is). The worker echoes this form in
 * its answers.
 */
export function normaliseMintUrl(url: string): string {
  if (typeof url !== 'string') throw new TypeError('mint_url must be a string');
  const trimmed = url.trim().replace(/\/+$/, '');
  const match = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)(.*)$/s.exec(trimmed);
  if (!match) throw new TypeError('mint_url must be an http(s) URL');
  const [, scheme = '', authority = '', rest = ''] = match;
  const lowerScheme = scheme.toLowerCase();
  if ((lowerScheme !== 'http' && lowerScheme !== 'https') || authority === '' || /\s/.test(trimmed)) {
    throw new TypeError('mint_url must be an http(s) URL');
  }
  return `${lowerScheme}://${authority.toLowerCase()}${rest}`;
}
