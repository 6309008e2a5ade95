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

const urlPattern = /^(?:([A-Za-z][A-Za-z0-9+.-]*):)?(?:\/\/([^/?#]*))?([^?#]*)(?:\?([^#]*))?(?:#.*)?$/;

/** Parses like Go's url.ParseRequestURI: an absolute URL or an absolute path. */
function parseRequestURI(text: string): CelURL | undefined {
  // Go's parser refuses spaces and control characters anywhere in a URL.
  if ([...text].some((c) => c.trim() === '' || c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f)) return undefined;
  const match = urlPattern.exec(text);
  if (!match) return undefined;
  const [, scheme = '', authority, path = ''] = match;
  if (!scheme && !path.startsWith('/')) return undefined;
  const host = authority === undefined ? '' : authority.slice(authority.lastIndexOf('@') + 1);
  return new CelURL(scheme.toLowerCase(), host, path);
}

function url(text: string): CelURL {
  const parsed = parseRequestURI(text);
  if (!parsed) throw new Error(`URL parse error during conversion from string: ${text}`);
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
