/**
 * The CEL environment of CRD validation rules, as the Kubernetes API server offers it:
 * `self` and `oldSelf`, plus the parts of Kubernetes' URL library our rules use.
 * URLs are parsed the way Go's net/url does, not as WHATWG URLs, so that `ws:///x`
 * has no host here either.
 */
import { Environment } from '@marcbachmann/cel-js';

/** A URL as Kubernetes' CEL `url()` returns it. */
class CelURL {
  constructor(
    readonly scheme: string,
    readonly host: string,
    readonly path: string,
  ) {}

  get hostname(): string {
    const bracketed = /^\[([^\]]*)\]/.exec(this.host);
    if (bracketed) return bracketed[1] ?? '';
    const colon = this.host.lastIndexOf(':');
    return colon === -1 ? this.host : this.host.slice(0, colon);
  }

  get port(): string {
    const match = /:(\d*)$/.exec(this.host.replace(/^\[[^\]]*\]/, ''));
    return match?.[1] ?? '';
  }
}

const urlPattern = /^(?:([A-Za-z][A-Za-z0-9+.-]*):)?(?:\/\/([^/?]*))?([^?]*)(?:\?(.*))?$/s;
/** Characters Go accepts in a host, beside letters, digits and bytes above 0x7f. */
const hostCharacters = /^[A-Za-z0-9\-._~!$&'()*+,;=:[\]<>"%\u0080-\uffff]*$/u;
const badEscape = /%(?![0-9A-Fa-f]{2})/;

/** Go's parseHost: brackets closed, a port of digits only, valid characters and escapes. */
function validHost(host: string): boolean {
  let name = host;
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    if (end === -1) return false;
    const rest = host.slice(end + 1);
    if (rest !== '' && !/^:\d*$/.test(rest)) return false;
    name = host.slice(1, end);
  } else {
    const colon = host.lastIndexOf(':');
    if (colon !== -1) {
      if (!/^\d*$/.test(host.slice(colon + 1))) return false;
      name = host.slice(0, colon);
    }
  }
  return hostCharacters.test(name) && !badEscape.test(name);
}

/**
 * Parses as Go's url.ParseRequestURI does: an absolute URL or an absolute path, no
 * control characters, a valid host and port, valid %-escapes. The fragment is not
 * split off: a request URI has none.
 */
function parseRequestURI(text: string): CelURL | undefined {
  if ([...text].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f)) return undefined;
  const match = urlPattern.exec(text);
  if (!match) return undefined;
  const [, scheme = '', authority, path = ''] = match;
  if (authority === undefined && !path.startsWith('/')) return undefined;
  if (!scheme && authority !== undefined) return undefined;
  if (badEscape.test(path)) return undefined;
  const host = authority === undefined ? '' : authority.slice(authority.lastIndexOf('@') + 1);
  if (!validHost(host)) return undefined;
  return new CelURL(scheme.toLowerCase(), host, path);
}

function url(text: string): CelURL {
  const parsed = parseRequestURI(text);
  if (!parsed) throw new Error(`URL parse error during conversion from string: ${text}`, { cause: text });
  return parsed;
}

function method(name: string, handler: (u: CelURL) => string) {
  return { name, receiverType: 'URL', returnType: 'string', handler, params: [] };
}

/** A CEL environment with the variables and functions of CRD validation rules. */
export const celEnvironment = new Environment()
  .registerType('URL', CelURL)
  .registerVariable('self', 'dyn')
  .registerVariable('oldSelf', 'dyn')
  .registerFunction('isURL(string): bool', (text: string) => parseRequestURI(text) !== undefined)
  .registerFunction('url(string): URL', url)
  .registerFunction(method('getScheme', (u) => u.scheme))
  .registerFunction(method('getHost', (u) => u.host))
  .registerFunction(method('getHostname', (u) => u.hostname))
  .registerFunction(method('getPort', (u) => u.port))
  .registerFunction(method('getEscapedPath', (u) => u.path));
