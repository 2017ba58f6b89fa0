// Checks real HTTP responses against docs/openapi.json, so that the server and its published
// description cannot drift apart unnoticed. Used by the black-box suite (node --test tests/api/).
//
//   import { validateResponse } from './lib/openapi.mjs';
//   const res = await fetch(url + '/api/sessions?limit=3');
//   validateResponse({ method: 'GET', path: '/api/sessions?limit=3', status: res.status,
//                      headers: res.headers, body: await res.text() });
//
// What is checked:
//   - the path matches a path template of the spec (`/api/sessions/{id}`; query string ignored,
//     a trailing slash tolerated as the server does), the method is documented there, and the
//     status code is documented for that operation;
//   - every documented header marked `required` is present, and each documented header that is
//     present matches its schema (integers are parsed);
//   - a response documented with content has a Content-Type whose media type is documented,
//     with `charset=utf-8` for JSON and text (the contract requires it), and a body matching
//     the schema (Ajv, JSON Schema 2020-12, errors listed with their instancePath);
//   - a response documented without content (204, HEAD) has an empty body;
//   - a `text/event-stream` response (a reply or event stream) is accepted where one is
//     documented: status, headers and Content-Type (with charset=utf-8) are checked, the body is
//     not (it is a stream: pass its text, or undefined when it was not read).
// Answers that belong to no single operation live in the spec's root `x-global-responses`:
//   - an unknown path may answer 404 (`unknownPath`), and nothing else;
//   - a listed path with an undocumented method may answer 405 (`methodNotAllowed`); its `Allow`
//     header must list exactly the documented methods, plus HEAD where GET is, plus OPTIONS;
//   - OPTIONS on a listed path (unless documented as an operation) answers 204 (`preflight`),
//     with the same `Allow` check;
//   - any request may answer 421 (`misdirectedHost`), and 400 (`malformedRequest`) where its
//     operation documents no 400 of its own.
// HEAD on a path with a documented GET uses the GET operation (same headers, empty body).
//
// `body` may be a string (raw text, parsed here for JSON media types), a Buffer/Uint8Array,
// an already-parsed JSON value, or undefined/null/'' for "no body" (or, for an event stream,
// for "not read").
// `headers` may be a fetch `Headers` object or a plain object (any case; array values joined).
import { AssertionError } from 'node:assert';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

export const SPEC_PATH = fileURLToPath(new URL('../../../docs/openapi.json', import.meta.url));
export const spec = JSON.parse(readFileSync(SPEC_PATH, 'utf8'));

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
const SCHEMAS_ID = 'https://goosed.invalid/openapi/components/schemas';
const COMPONENT_SCHEMA_REF = '#/components/schemas/';
// Keywords whose values are data, not schemas: never rewritten.
const DATA_KEYWORDS = new Set(['const', 'enum', 'default', 'examples', 'example']);
// Keywords whose values are maps from names (which may look like anything) to schemas.
const SCHEMA_MAPS = new Set(['properties', 'patternProperties', '$defs', 'definitions', 'dependentSchemas']);

function fail(message) {
  throw new AssertionError({ message, operator: 'validateResponse' });
}

// ---- the spec ----------------------------------------------------------------------------------

/** Follows a local JSON pointer (`#/components/...`) in the spec. */
function pointer(ref) {
  if (typeof ref !== 'string' || !ref.startsWith('#/'))
    throw new Error(`openapi.mjs: only local $refs are supported, got ${JSON.stringify(ref)}`);
  let node = spec;
  for (const raw of ref.slice(2).split('/')) {
    const key = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
    if (node === null || typeof node !== 'object' || !(key in node))
      throw new Error(`openapi.mjs: unresolvable $ref ${ref}`);
    node = node[key];
  }
  return node;
}

/** A Reference Object resolved (repeatedly) to what it points at. */
function deref(node) {
  for (let i = 0; node && typeof node === 'object' && typeof node.$ref === 'string'; i++) {
    if (i > 32) throw new Error('openapi.mjs: $ref cycle');
    node = pointer(node.$ref);
  }
  return node;
}

// ---- schemas: one Ajv instance, components registered once, every schema compiled once ----------

const ajv = new Ajv2020({ allErrors: true, strict: true, allowUnionTypes: true });
addFormats(ajv);
// OpenAPI's own schema keywords (annotations for Ajv's purposes).
ajv.addVocabulary(['example', 'xml', 'externalDocs', 'discriminator']);

/** A copy of an OpenAPI schema fit for Ajv: component $refs made absolute, x- keys dropped. */
function forAjv(schema) {
  if (Array.isArray(schema)) return schema.map(forAjv);
  if (schema === null || typeof schema !== 'object') return schema;
  const out = {};
  for (const [k, v] of Object.entries(schema)) {
    if (k.startsWith('x-')) continue;
    if (k === '$ref') {
      if (typeof v !== 'string' || !v.startsWith(COMPONENT_SCHEMA_REF))
        throw new Error(`openapi.mjs: schema $ref ${JSON.stringify(v)} is not under ${COMPONENT_SCHEMA_REF}`);
      out.$ref = `${SCHEMAS_ID}#/$defs/${v.slice(COMPONENT_SCHEMA_REF.length)}`;
    } else if (DATA_KEYWORDS.has(k)) {
      out[k] = v;
    } else if (SCHEMA_MAPS.has(k) && v && typeof v === 'object') {
      out[k] = Object.fromEntries(Object.entries(v).map(([name, s]) => [name, forAjv(s)]));
    } else {
      out[k] = forAjv(v);
    }
  }
  return out;
}

ajv.addSchema({
  $id: SCHEMAS_ID,
  $defs: Object.fromEntries(
    Object.entries(spec.components?.schemas ?? {}).map(([name, s]) => [name, forAjv(s)]),
  ),
});

const compiled = new WeakMap();

/** The compiled validator of a schema object of the spec (compiled on first use, then cached). */
function validatorFor(schema) {
  let v = compiled.get(schema);
  if (!v) {
    v = ajv.compile(forAjv(schema));
    compiled.set(schema, v);
  }
  return v;
}

function ajvErrors(errors) {
  return (errors ?? [])
    .map((e) => {
      const params = e.params && Object.keys(e.params).length ? ` ${JSON.stringify(e.params)}` : '';
      const at = e.schemaPath.replace(`${SCHEMAS_ID}#/$defs/`, '#/components/schemas/');
      return `  ${e.instancePath || '(root)'}: ${e.message}${params}  [${at}]`;
    })
    .join('\n');
}

function excerpt(value) {
  let s;
  try {
    s = typeof value === 'string' ? value : JSON.stringify(value);
  } catch {
    s = String(value);
  }
  if (s === undefined) s = String(value);
  return s.length > 600 ? `${s.slice(0, 600)}… (${s.length} chars)` : s;
}

// ---- paths -------------------------------------------------------------------------------------

const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const routes = Object.keys(spec.paths ?? {})
  .map((template) => {
    const parts = template.split(/(\{[^}/]+\})/).filter(Boolean);
    const names = [];
    const re = parts
      .map((p) => {
        if (p.startsWith('{') && p.endsWith('}')) {
          names.push(p.slice(1, -1));
          return '([^/]+)';
        }
        return escapeRe(p);
      })
      .join('');
    const literal = parts.filter((p) => !p.startsWith('{')).join('').length;
    return { template, names, re: new RegExp(`^${re.replace(/\/$/, '')}/?$`), literal };
  })
  // Literal paths win over templated ones (`/x/current` before `/x/{id}`).
  .sort((a, b) => a.names.length - b.names.length || b.literal - a.literal);

function pathnameOf(path) {
  const s = String(path);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) return new URL(s).pathname;
  return s.split(/[?#]/, 1)[0];
}

/** The spec's path template for a concrete path, with its parameters, or null. */
export function matchPath(path) {
  const pathname = pathnameOf(path);
  for (const r of routes) {
    const m = r.re.exec(pathname);
    if (m) {
      const params = {};
      r.names.forEach((n, i) => {
        params[n] = decodeURIComponent(m[i + 1]);
      });
      return { template: r.template, params };
    }
  }
  return null;
}

// ---- headers and bodies -------------------------------------------------------------------------

function headerGetter(headers) {
  if (!headers) return () => undefined;
  if (typeof headers.get === 'function' && typeof headers.has === 'function') {
    return (name) => (headers.has(name) ? headers.get(name) : undefined);
  }
  const lower = new Map();
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined || v === null) continue;
    lower.set(k.toLowerCase(), Array.isArray(v) ? v.join(', ') : String(v));
  }
  return (name) => lower.get(name.toLowerCase());
}

function parseMediaType(value) {
  const [essence, ...rest] = String(value).split(';');
  const params = {};
  for (const p of rest) {
    const i = p.indexOf('=');
    if (i < 0) continue;
    params[p.slice(0, i).trim().toLowerCase()] = p.slice(i + 1).trim().replace(/^"(.*)"$/, '$1');
  }
  return { essence: essence.trim().toLowerCase(), params };
}

const isEventStream = (essence) => essence === 'text/event-stream';
const isJsonType = (essence) => essence === 'application/json' || /^application\/[^/]+\+json$/.test(essence);
const needsUtf8 = (essence) => isJsonType(essence) || essence.startsWith('text/');

function mediaMatches(documented, essence) {
  const d = parseMediaType(documented).essence;
  if (d === essence || d === '*/*') return true;
  return d.endsWith('/*') && essence.startsWith(d.slice(0, -1));
}

function isEmptyBody(body) {
  if (body === undefined || body === null || body === '') return true;
  if (body instanceof ArrayBuffer) return body.byteLength === 0;
  if (ArrayBuffer.isView(body)) return body.byteLength === 0;
  return false;
}

function bytesToString(body) {
  if (body instanceof ArrayBuffer) return new TextDecoder().decode(body);
  if (ArrayBuffer.isView(body)) return new TextDecoder().decode(body);
  return body;
}

function headerValue(schema, raw) {
  const s = deref(schema);
  const types = [].concat(s?.type ?? []);
  if (types.includes('integer') && /^-?(0|[1-9][0-9]*)$/.test(raw)) return Number(raw);
  if (types.includes('number') && raw.trim() !== '' && !Number.isNaN(Number(raw))) return Number(raw);
  if (types.includes('boolean') && (raw === 'true' || raw === 'false')) return raw === 'true';
  return raw;
}

function checkHeaders(where, documented, get) {
  for (const [name, h0] of Object.entries(documented ?? {})) {
    if (name.toLowerCase() === 'content-type') continue; // OpenAPI: ignored in `headers`
    const h = deref(h0);
    const raw = get(name);
    if (raw === undefined) {
      if (h.required) fail(`${where}: required header ${name} is missing`);
      continue;
    }
    if (h.schema) {
      const v = validatorFor(h.schema);
      if (!v(headerValue(h.schema, raw)))
        fail(`${where}: header ${name}: ${JSON.stringify(raw)} does not match its schema:\n${ajvErrors(v.errors)}`);
    }
  }
}

/** Methods the server must list in `Allow` for a path item: documented + HEAD (with GET) + OPTIONS. */
function allowedMethods(item) {
  const set = new Set();
  for (const m of METHODS) if (item[m]) set.add(m.toUpperCase());
  if (set.has('GET')) set.add('HEAD');
  set.add('OPTIONS');
  return set;
}

function checkAllow(where, item, get) {
  const raw = get('Allow');
  if (raw === undefined) fail(`${where}: Allow header is missing`);
  const got = new Set(raw.split(',').map((s) => s.trim().toUpperCase()).filter(Boolean));
  const want = allowedMethods(item);
  const same = got.size === want.size && [...want].every((m) => got.has(m));
  if (!same) fail(`${where}: Allow is ${JSON.stringify(raw)}, the spec documents ${[...want].join(', ')}`);
}

function checkBody(where, response, get, body, bodyless) {
  const content = response.content && Object.keys(response.content).length ? response.content : null;
  if (!content) {
    if (!isEmptyBody(body)) fail(`${where}: the documented response has no content, but the body is ${excerpt(bytesToString(body))}`);
    return;
  }
  const ct = get('Content-Type');
  const documented = Object.keys(content);
  if (ct === undefined) fail(`${where}: Content-Type is missing (documented: ${documented.join(', ')})`);
  const { essence, params } = parseMediaType(ct);
  const key = documented.find((d) => d.split(';')[0].trim().toLowerCase() === essence) ??
    documented.find((d) => mediaMatches(d, essence));
  if (!key) fail(`${where}: Content-Type ${JSON.stringify(ct)} is not documented (documented: ${documented.join(', ')})`);
  if (needsUtf8(essence) && (params.charset ?? '').toLowerCase() !== 'utf-8')
    fail(`${where}: Content-Type ${JSON.stringify(ct)} lacks charset=utf-8`);
  if (bodyless) {
    if (!isEmptyBody(body)) fail(`${where}: a HEAD response must have an empty body, got ${excerpt(bytesToString(body))}`);
    return;
  }
  // Server-Sent Events: the body is a stream that may still be running, or was never read (the
  // caller may pass the text, a ReadableStream or undefined). Its events are described in the
  // spec (EventStream, StreamEvent) but not checked here.
  if (isEventStream(essence)) return;
  const schema = content[key].schema;
  let value = bytesToString(body);
  if (isJsonType(essence)) {
    if (value === undefined || value === '') fail(`${where}: the body is empty, ${key} content was expected`);
    if (typeof value === 'string') {
      try {
        value = JSON.parse(value);
      } catch (e) {
        fail(`${where}: the body is not valid JSON (${e.message}): ${excerpt(value)}`);
      }
    }
  } else if (essence.startsWith('text/')) {
    if (value === undefined || value === null) value = '';
    if (typeof value !== 'string') fail(`${where}: a ${essence} body should be given as a string, got ${typeof value}`);
  } else {
    return; // no schema check for other media types
  }
  if (!schema) return;
  const v = validatorFor(schema);
  if (!v(value)) fail(`${where}: the body does not match the documented schema:\n${ajvErrors(v.errors)}\nbody: ${excerpt(value)}`);
}

// ---- the entry point -----------------------------------------------------------------------------

/**
 * Throws an AssertionError (with a readable message) unless the response is one the spec
 * documents for this request. See the top of this file for what is checked.
 */
export function validateResponse({ method, path, status, headers, body } = {}) {
  const m = String(method ?? '').toUpperCase();
  const code = Number(status);
  const where = `${m} ${path} -> ${status}`;
  const get = headerGetter(headers);
  const global = spec['x-global-responses'] ?? {};
  const match = matchPath(path);
  let response;
  let bodyless = m === 'HEAD';

  const documented400 = match && (() => {
    const it = deref(spec.paths[match.template]);
    const op = it[m.toLowerCase()] ?? (m === 'HEAD' ? it.get : undefined);
    return !!op?.responses?.['400'];
  })();
  if (code === 421 && global.misdirectedHost) {
    response = deref(global.misdirectedHost);
  } else if (code === 400 && global.malformedRequest && !documented400) {
    response = deref(global.malformedRequest);
  } else if (!match) {
    if (code !== 404 || !global.unknownPath)
      fail(`${where}: no path of docs/openapi.json matches ${pathnameOf(path)} (an unknown path may only answer 404)`);
    response = deref(global.unknownPath);
  } else {
    const item = deref(spec.paths[match.template]);
    const tpl = `${m} ${match.template}`;
    let op = item[m.toLowerCase()];
    if (!op && m === 'HEAD' && item.get) op = item.get;
    if (op) {
      const responses = op.responses ?? {};
      const r = responses[String(code)] ?? responses[`${String(code)[0]}XX`] ?? responses.default;
      if (!r)
        fail(`${where}: status ${code} is not documented for ${tpl} (documented: ${Object.keys(responses).join(', ')})`);
      response = deref(r);
    } else if (m === 'OPTIONS' && global.preflight) {
      if (code !== 204) fail(`${where}: OPTIONS ${match.template} must answer 204 (x-global-responses.preflight)`);
      response = deref(global.preflight);
      checkAllow(where, item, get);
    } else if (code === 405 && global.methodNotAllowed) {
      response = deref(global.methodNotAllowed);
      checkAllow(where, item, get);
    } else {
      const documented = METHODS.filter((x) => item[x]).map((x) => x.toUpperCase());
      fail(`${where}: method ${m} is not documented for ${match.template} (documented: ${documented.join(', ')}; an undocumented method may only answer 405)`);
    }
  }
  checkHeaders(where, response.headers, get);
  checkBody(where, response, get, body, bodyless);
}
