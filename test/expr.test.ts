import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { CapiError, ErrorCode } from '../src/errors.js';
import { compileRegex } from '../src/expr/evaluate.js';
import {
  compileExpr,
  compileTemplate,
  ExprEvalError,
  ExprSyntaxError,
  evaluateBoolean,
  evaluateExpr,
  FUNCTION_NAMES,
  freeVariables,
  MAX_EXPRESSION_LENGTH,
  MAX_NESTING_DEPTH,
  renderCompiledTemplate,
  renderTemplate,
  templateFreeVariables,
} from '../src/expr/index.js';

type Scope = Record<string, unknown>;

const run = (source: string, scope: Scope = {}): unknown => evaluateExpr(compileExpr(source), scope);

function syntaxError(source: string): ExprSyntaxError {
  try {
    compileExpr(source);
  } catch (err) {
    expect(err).toBeInstanceOf(ExprSyntaxError);
    return err as ExprSyntaxError;
  }
  throw new Error(`expected a syntax error for: ${source}`);
}

function evalError(source: string, scope: Scope = {}): ExprEvalError {
  const compiled = compileExpr(source);
  try {
    evaluateExpr(compiled, scope);
  } catch (err) {
    expect(err).toBeInstanceOf(ExprEvalError);
    return err as ExprEvalError;
  }
  throw new Error(`expected an evaluation error for: ${source}`);
}

function templateError(template: string): ExprSyntaxError {
  try {
    compileTemplate(template);
  } catch (err) {
    expect(err).toBeInstanceOf(ExprSyntaxError);
    return err as ExprSyntaxError;
  }
  throw new Error(`expected a template syntax error for: ${template}`);
}

// Shaped like `openstack hypervisor list --long -f yaml`.
const hypervisors = parseYaml(`
- ID: 1
  Hypervisor Hostname: compute-01.cloud.example
  Hypervisor Type: QEMU
  Host IP: 10.0.0.11
  State: up
  vCPUs Used: 60
  vCPUs: 64
  Memory MB Used: 252000
  Memory MB: 257000
- ID: 2
  Hypervisor Hostname: compute-02.cloud.example
  Hypervisor Type: QEMU
  Host IP: 10.0.0.12
  State: up
  vCPUs Used: 12
  vCPUs: 64
  Memory MB Used: 200000
  Memory MB: 257000
- ID: 3
  Hypervisor Hostname: compute-03.cloud.example
  Hypervisor Type: QEMU
  Host IP: 10.0.0.13
  State: down
  vCPUs Used: 0
  vCPUs: 64
  Memory MB Used: 512
  Memory MB: "257000"
`) as Scope[];

// Shaped like `openstack loadbalancer list -f yaml`.
const lbs = parseYaml(`
- id: 5f0c2f4e-3d6a-4b1e-9c1a-6f2b8f9d0a11
  name: kube_service_capi-test-1_default_ingress
  project_id: 8d4c0e2f1a3b4c5d6e7f8a9b0c1d2e3f
  vip_address: 10.6.0.21
  provisioning_status: ACTIVE
  operating_status: ONLINE
  provider: amphora
- id: 7a1d9e3b-2c4f-4d8a-b6e5-1f0a2b3c4d5e
  name: capi-test-1-kubeapi
  project_id: 8d4c0e2f1a3b4c5d6e7f8a9b0c1d2e3f
  vip_address: 10.6.0.10
  provisioning_status: ERROR
  operating_status: OFFLINE
  provider: amphora
`) as Scope[];

// Shaped like `openstack server list --all-projects -f yaml` and `openstack loadbalancer amphora list -f yaml`.
const servers = parseYaml(`
- ID: 0b6f
  Name: amphora-1111-aaaa
  Status: ACTIVE
- ID: 1c7a
  Name: amphora-2222-bbbb
  Status: ACTIVE
- ID: 2d8b
  Name: capi-test-1-control-plane-x7k2p
  Status: ACTIVE
- ID: 3e9c
  Name: amphora-3333-cccc
  Status: ERROR
`) as Scope[];
const amphorae = parseYaml(`
- id: 1111-aaaa
  loadbalancer_id: 5f0c2f4e-3d6a-4b1e-9c1a-6f2b8f9d0a11
  status: ALLOCATED
  role: STANDALONE
`) as Scope[];

describe('precedence and associativity', () => {
  it('should bind * tighter than + when both appear without parentheses', () => {
    expect(run('1 + 2 * 3')).toBe(7);
    expect(run('(1 + 2) * 3')).toBe(9);
    expect(run('10 - 6 / 2')).toBe(7);
  });

  it('should associate additive and multiplicative operators left to right when chained', () => {
    expect(run('10 - 4 - 3')).toBe(3);
    expect(run('24 / 4 / 2')).toBe(3);
    expect(run('7 % 4 * 2')).toBe(6);
    expect(run('"a" + "b" + "c"')).toBe('abc');
  });

  it('should bind and tighter than or when mixed', () => {
    expect(run('true or false and false')).toBe(true);
    expect(run('(true or false) and false')).toBe(false);
    expect(run('false and true or true')).toBe(true);
  });

  it('should apply not to a whole comparison but not across and when prefixed', () => {
    expect(run('not 1 == 2')).toBe(true);
    expect(run('not 1 == 1 and true')).toBe(false);
    expect(run('not false and false')).toBe(false);
    expect(run('not not 1')).toBe(true);
  });

  it('should bind comparisons tighter than and when gates combine conditions', () => {
    expect(run('1 + 1 == 2 and 3 > 2')).toBe(true);
    expect(run('"b" in ["a", "b"] and "c" not in ["a"]')).toBe(true);
  });

  it('should apply unary minus before multiplication and after member access when prefixed', () => {
    expect(run('-2 * 3')).toBe(-6);
    expect(run('- -2')).toBe(2);
    expect(run('2 * -a.b', { a: { b: 5 } })).toBe(-10);
  });

  it('should refuse chained comparisons when written like a < b < c', () => {
    const err = syntaxError('1 < x < 3');
    expect(err.reason).toContain("comparisons cannot be chained: combine them with 'and'");
    expect(err.column).toBe(7);
    expect(run('(1 < 2) == true')).toBe(true);
  });

  it('should require parentheses when not follows a comparison operator', () => {
    expect(syntaxError('false == not true').reason).toContain("'not' needs parentheses");
    expect(run('false == (not true)')).toBe(true);
  });

  it('should return booleans from and/or using truthiness when operands are not booleans', () => {
    expect(run('1 and "x"')).toBe(true);
    expect(run('0 or ""')).toBe(false);
    expect(run('[] or null')).toBe(false);
    expect(run('[0] and 2')).toBe(true);
  });
});

describe('literals and member access', () => {
  it('should read numbers, strings and keywords when written as literals', () => {
    expect(run('1024')).toBe(1024);
    expect(run('1.5')).toBe(1.5);
    expect(run("'its'")).toBe('its');
    expect(run(String.raw`"a\"b\\c\n\t" + 'd\'e'`)).toBe('a"b\\c\n\td\'e');
    expect(run('true')).toBe(true);
    expect(run('false')).toBe(false);
    expect(run('null')).toBeNull();
    expect(run('["ACTIVE", "ERROR", 1,]')).toEqual(['ACTIVE', 'ERROR', 1]);
  });

  it('should keep unknown escapes verbatim when a string holds a regex', () => {
    expect(run(String.raw`"\d+\s"`)).toBe(String.raw`\d+\s`);
    expect(run(String.raw`"\\d"`)).toBe(String.raw`\d`);
  });

  it('should read fields, quoted keys and positions when accessing members', () => {
    const scope = { h: hypervisors[0], list: [10, 20, 30] };
    expect(run('h.State', scope)).toBe('up');
    expect(run('h["Memory MB Used"]', scope)).toBe(252000);
    expect(run('list[0]', scope)).toBe(10);
    expect(run('list[-1]', scope)).toBe(30);
    expect(run('list[1 + 1]', scope)).toBe(30);
    expect(run('list[3]', scope)).toBeNull();
    expect(run('list[-4]', scope)).toBeNull();
    expect(run('"abc"[1]')).toBe('b');
  });

  it('should yield null when a field or a link in the chain is missing', () => {
    const scope = { lb: { name: 'x', listeners: null } };
    expect(run('lb.description', scope)).toBeNull();
    expect(run('lb.listeners[0].id', scope)).toBeNull();
    expect(run('lb.a.b.c', scope)).toBeNull();
    expect(run('nothing.x', { nothing: undefined })).toBeNull();
  });

  it('should not expose JS internals when a field is named like an Object prototype member', () => {
    expect(run('o.constructor', { o: {} })).toBeNull();
    expect(run('o["__proto__"]', { o: {} })).toBeNull();
    expect(run('o.toString', { o: { toString: 'own' } })).toBe('own');
  });

  it('should fail with a map() hint when reading a field of a list', () => {
    const err = evalError('lbs.provisioning_status', { lbs });
    expect(err.reason).toBe(
      "cannot read 'provisioning_status' of a list of 2: use map(list, it.provisioning_status) to read it from every element, or [0].provisioning_status for the first one",
    );
    expect(err.column).toBe(4);
  });

  it('should fail when indexing a list with a fraction or reading a field of a number', () => {
    expect(evalError('l[1.5]', { l: [1, 2] }).reason).toContain('list index must be a whole number, got 1.5');
    expect(evalError('n.x', { n: 5 }).reason).toBe("cannot read 'x' of number 5");
  });
});

describe('variables', () => {
  it('should fail naming the variable and the known ones when the name is not in scope', () => {
    const err = evalError('len(lbz) > 0', { lbs, stdout: '' });
    expect(err.code).toBe(ErrorCode.ExpressionEval);
    expect(err).toBeInstanceOf(CapiError);
    expect(err.reason).toBe("unknown variable 'lbz': did you mean 'lbs'? (known: lbs, stdout)");
    expect(err.column).toBe(5);
  });

  it('should return null rather than fail when the variable exists with a null value', () => {
    expect(run('x', { x: null })).toBeNull();
    expect(run('x', { x: undefined })).toBeNull();
  });

  it('should not treat prototype names as variables when the scope lacks them', () => {
    expect(evalError('constructor', {}).reason).toContain("unknown variable 'constructor'");
  });
});

describe('operators', () => {
  it('should compare strictly and deeply when using == and !=', () => {
    expect(run('"1" == 1')).toBe(false);
    expect(run('1 == 1.0')).toBe(true);
    expect(run('[1, "a"] == [1, "a"]')).toBe(true);
    expect(run('[1, "a"] == ["a", 1]')).toBe(false);
    expect(run('a == b', { a: { x: [1, { y: 2 }] }, b: { x: [1, { y: 2 }] } })).toBe(true);
    expect(run('a == b', { a: { x: 1 }, b: { x: 1, y: 2 } })).toBe(false);
    expect(run('o.missing == null', { o: {} })).toBe(true);
    expect(run('0 != false')).toBe(true);
    expect(run('null != ""')).toBe(true);
  });

  it('should order numbers and strings when both sides have the same type', () => {
    expect(run('2 < 10')).toBe(true);
    expect(run('"10" < "2"')).toBe(true);
    expect(run('3 <= 3 and 3 >= 3 and 4 > 3')).toBe(true);
  });

  it('should fail naming both types and suggesting num() when comparing a string with a number', () => {
    const err = evalError('h["Memory MB"] < 4096', { h: hypervisors[2] });
    expect(err.reason).toContain("'<' needs two numbers or two strings, got string and number: use num(...)");
    expect(err.reason).toContain('left is "257000"');
    expect(err.column).toBe(16);
  });

  it('should fail suggesting default() when comparing a missing field', () => {
    expect(evalError('x.count > 1', { x: {} }).reason).toContain(
      'got null and number: a field may be missing',
    );
  });

  it('should match regexes when using =~ and !~', () => {
    expect(run('"amphora-1234" =~ "^amphora-"')).toBe(true);
    expect(run('"AMPHORA" =~ "^amphora"')).toBe(false);
    expect(run('"x" !~ "^a"')).toBe(true);
    expect(run('s =~ p', { s: 'abc', p: 'b.' })).toBe(true);
  });

  it('should test membership in lists and substrings when using in and not in', () => {
    expect(run('"ERROR" in ["ACTIVE", "ERROR"]')).toBe(true);
    expect(run('"ERR" in ["ACTIVE", "ERROR"]')).toBe(false);
    expect(run('"ERR" in "PENDING_ERROR"')).toBe(true);
    expect(run('[1] in [[1], [2]]')).toBe(true);
    expect(run('"x" not in ["a"]')).toBe(true);
    expect(run('"a" not in "abc"')).toBe(false);
  });

  it('should fail when the right side of in is null or an object', () => {
    expect(evalError('"a" in x', { x: null }).reason).toContain(
      "'in' needs a list or a string to search, but it is null",
    );
    expect(evalError('"a" in x', { x: { a: 1 } }).reason).toContain('use keys(...)');
    expect(evalError('1 in "abc"').reason).toContain('looks for a substring');
  });

  it('should concatenate strings and add numbers when using +', () => {
    expect(run('"capi-" + name', { name: 'test-1' })).toBe('capi-test-1');
    expect(run('0.5 + 1')).toBe(1.5);
  });

  it('should fail suggesting num() and str() when adding a string and a number', () => {
    const err = evalError('"32768" + 1');
    expect(err.reason).toContain("'+' adds two numbers or joins two strings, got string and number");
    expect(err.reason).toContain('use num(...)');
  });

  it('should fail naming the operand type and suggesting num() when doing arithmetic on a string', () => {
    const err = evalError('h["Memory MB"] * 1.5', { h: hypervisors[2] });
    expect(err.reason).toBe(
      `'*' needs numbers, but the left side is string "257000": use num(...) if it holds numeric text`,
    );
    expect(evalError('-"3"').reason).toContain('the operand is string "3"');
    expect(evalError('true - 1').reason).toContain('the left side is boolean true');
    expect(evalError('1 - x.y', { x: {} }).reason).toContain('the right side is null');
  });

  it('should fail when dividing by zero', () => {
    expect(evalError('1 / (2 - 2)').reason).toBe("division by zero in '/'");
    expect(evalError('1 % 0').reason).toBe("division by zero in '%'");
  });
});

describe('short-circuit evaluation', () => {
  it('should not evaluate the right side when and already has a false left side', () => {
    expect(run('false and missing_variable > 1')).toBe(false);
    expect(run('len(l) > 0 and l[0].x == 1', { l: [] })).toBe(false);
  });

  it('should not evaluate the right side when or already has a true left side', () => {
    expect(run('true or num("not a number") > 1')).toBe(true);
  });

  it('should evaluate the right side when the left side does not decide the result', () => {
    expect(evalError('true and missing_variable').reason).toContain("unknown variable 'missing_variable'");
    expect(evalError('false or 1 / 0').reason).toContain('division by zero');
  });

  it('should stop at the first decisive element when any() or all() finds it', () => {
    expect(run('any(l, it == 1 or it.x == 1)', { l: [1, 'not an object'] })).toBe(true);
    expect(run('all(l, 2 / it > 0)', { l: [-1, 0] })).toBe(false);
  });

  it('should only evaluate the fallback when default() gets null', () => {
    expect(run('default(x, 1 / 0)', { x: 5 })).toBe(5);
    expect(run('default(x, 7)', { x: null })).toBe(7);
  });
});

describe('list functions', () => {
  const nums = { l: [3, 1, 4, 1, 5] };

  it('should check every element when all() is used', () => {
    expect(run('all(lbs, it.provisioning_status == "ACTIVE")', { lbs })).toBe(false);
    expect(run('all(lbs, it.provider == "amphora")', { lbs })).toBe(true);
    expect(run('all(l, it > 100)', { l: [] })).toBe(true);
  });

  it('should find a match when any() is used', () => {
    expect(run('any(lbs, it.provisioning_status == "ERROR")', { lbs })).toBe(true);
    expect(run('any(lbs, it.provisioning_status == "PENDING_UPDATE")', { lbs })).toBe(false);
    expect(run('any(l, true)', { l: [] })).toBe(false);
  });

  it('should keep matching elements when filter() is used', () => {
    expect(run('filter(l, it > 2)', nums)).toEqual([3, 4, 5]);
  });

  it('should transform elements when map() is used', () => {
    expect(run('map(lbs, it.vip_address)', { lbs })).toEqual(['10.6.0.21', '10.6.0.10']);
    expect(run('map(l, it.missing)', { l: [{}, {}] })).toEqual([null, null]);
  });

  it('should count all or matching elements when count() is used', () => {
    expect(run('count(l)', nums)).toBe(5);
    expect(run('count(l, it == 1)', nums)).toBe(2);
  });

  it('should return the first match or null when find() is used', () => {
    expect(run('find(lbs, it.provisioning_status == "ERROR").name', { lbs })).toBe('capi-test-1-kubeapi');
    expect(run('find(l, it > 100)', nums)).toBeNull();
  });

  it('should see the outer scope and shadow it with the inner element when lambdas nest', () => {
    const clusters = [
      { name: 'a', nodes: [{ ready: true }, { ready: true }] },
      { name: 'b', nodes: [{ ready: true }, { ready: false }] },
    ];
    expect(
      run('map(filter(clusters, all(it.nodes, it.ready == want)), it.name)', { clusters, want: true }),
    ).toEqual(['a']);
  });

  it('should fail saying the value was null when a list function gets null', () => {
    const err = evalError('all(lbs, it.x == 1)', { lbs: null });
    expect(err.reason).toBe(
      'all() needs a list as argument 1, but it was null: the command output may have parsed to nothing, or the field is missing',
    );
    expect(err.column).toBe(5);
  });

  it('should fail when a list function gets an object or a string', () => {
    expect(evalError('any(x, it)', { x: { a: 1 } }).reason).toContain('got an object: use keys(...)');
    expect(evalError('map(x, it)', { x: 'abc' }).reason).toContain('got string "abc"');
  });

  it('should name the failing element when an error happens inside a lambda', () => {
    const err = evalError('all(hypervisors, it["Memory MB"] > 1000)', { hypervisors });
    expect(err.notes).toEqual(['in all() at element [2] of its list']);
    expect(err.message).toContain('(in all() at element [2] of its list)');
  });

  it('should refuse it outside a lambda argument when compiling', () => {
    expect(syntaxError('it.x == 1').reason).toContain("'it' only exists inside");
    expect(syntaxError('map(it, 1)').reason).toContain("'it' only exists inside");
  });
});

describe('value functions', () => {
  it('should measure lists and strings when len() is used', () => {
    expect(run('len(l)', { l: [1, 2] })).toBe(2);
    expect(run('len("abc")')).toBe(3);
    expect(evalError('len(x)', { x: null }).reason).toContain('but it is null');
    expect(evalError('len(x)', { x: { a: 1 } }).reason).toContain('len(keys(...))');
  });

  it('should convert numeric text when num() is used', () => {
    expect(run('num("32768")')).toBe(32768);
    expect(run('num(" -1.5 ")')).toBe(-1.5);
    expect(run('num(7)')).toBe(7);
    expect(evalError('num("32 GB")').reason).toBe('num() could not read a number from string "32 GB"');
    expect(evalError('num(x)', { x: null }).reason).toContain('is null');
    expect(evalError('num(true)').reason).toContain('boolean true');
  });

  it('should render values as text when str() is used', () => {
    expect(run('str("a")')).toBe('a');
    expect(run('str(1.25)')).toBe('1.25');
    expect(run('str(null)')).toBe('');
    expect(run('str(true)')).toBe('true');
    expect(run('str([1, "a"])')).toBe('[1,"a"]');
    expect(run('str(o)', { o: { a: { b: 1 } } })).toBe('{"a":{"b":1}}');
  });

  it('should change case and strip whitespace when lower(), upper() and trim() are used', () => {
    expect(run('lower("ACTIVE")')).toBe('active');
    expect(run('upper("error")')).toBe('ERROR');
    expect(run('trim("  x \\n")')).toBe('x');
    expect(evalError('lower(5)').reason).toContain('lower() needs a string as argument 1, got number 5');
  });

  it('should split text into lines dropping one trailing empty line when lines() is used', () => {
    expect(run('lines(s)', { s: 'a\nb\n' })).toEqual(['a', 'b']);
    expect(run('lines(s)', { s: 'a\r\nb' })).toEqual(['a', 'b']);
    expect(run('lines(s)', { s: 'a\n\n' })).toEqual(['a', '']);
    expect(run('lines("")')).toEqual([]);
  });

  it('should split and join on a plain separator when split() and join() are used', () => {
    expect(run('split("a.b.c", ".")')).toEqual(['a', 'b', 'c']);
    expect(run('join(["a", 1, null], ",")')).toBe('a,1,');
  });

  it('should replace every regex match when replace() is used', () => {
    expect(run('replace("a-b-c", "-", "+")')).toBe('a+b+c');
    expect(run('replace("amphora-1234", "^amphora-", "")')).toBe('1234');
    expect(run('replace("k=v", "(\\\\w)=(\\\\w)", "$2=$1")')).toBe('v=k');
  });

  it('should return the first group, the whole match or null when match() is used', () => {
    expect(run('match("version: 1.27.4", "(\\\\d+)\\\\.(\\\\d+)")')).toBe('1');
    expect(run('match("version: 1.27.4", "\\\\d+\\\\.\\\\d+")')).toBe('1.27');
    expect(run('match("none", "\\\\d+")')).toBeNull();
  });

  it('should search lists and strings when contains() is used', () => {
    expect(run('contains(["a", "b"], "b")')).toBe(true);
    expect(run('contains("ready", "ead")')).toBe(true);
    expect(run('contains([], 1)')).toBe(false);
  });

  it('should pick ends of a list or null when first() and last() are used', () => {
    expect(run('first([1, 2])')).toBe(1);
    expect(run('last([1, 2])')).toBe(2);
    expect(run('first([])')).toBeNull();
    expect(run('last([])')).toBeNull();
  });

  it('should drop repeated elements keeping order when unique() is used', () => {
    expect(run('unique([2, 1, 2, "2", [1], [1]])')).toEqual([2, 1, '2', [1]]);
  });

  it('should join one level of nested lists when flatten() is used', () => {
    const apps = { keystone: { units: { 'keystone/0': {}, 'keystone/1': {} } }, hacluster: {} };
    expect(run('flatten(map(filter(keys(a), a[it].units != null), keys(a[it].units)))', { a: apps })).toEqual(
      ['keystone/0', 'keystone/1'],
    );
    expect(run('flatten([[1, [2]], 3, []])')).toEqual([1, [2], 3]);
    expect(evalError('flatten("x")').reason).toContain('flatten() needs a list');
  });

  it('should list object keys in order when keys() is used', () => {
    expect(run('keys(h)', { h: { b: 1, a: 2 } })).toEqual(['b', 'a']);
    expect(evalError('keys([1])').reason).toContain('keys() needs an object, got a list of 1');
  });

  it('should replace only null when default() is used', () => {
    expect(run('default(o.missing, "n/a")', { o: {} })).toBe('n/a');
    expect(run('default(0, 5)')).toBe(0);
    expect(run('default("", 5)')).toBe('');
  });

  it('should total numbers when sum() is used', () => {
    expect(run('sum([1, 2, 3.5])')).toBe(6.5);
    expect(run('sum([])')).toBe(0);
    expect(evalError('sum([1, "2"])').reason).toContain(
      'element [1] is string "2": use sum(map(list, num(it)))',
    );
  });

  it('should pick extremes of numbers or strings when max() and min() are used', () => {
    expect(run('max([3, 9, 2])')).toBe(9);
    expect(run('min([3, 9, 2])')).toBe(2);
    expect(run('max(["b", "c", "a"])')).toBe('c');
    expect(run('min([])')).toBeNull();
    expect(evalError('max([1, "2"])').reason).toContain('element [1] is string "2"');
  });

  it('should offer exactly the documented functions when listing them', () => {
    expect(FUNCTION_NAMES).toEqual(
      [
        'all',
        'any',
        'contains',
        'count',
        'default',
        'filter',
        'find',
        'first',
        'flatten',
        'join',
        'keys',
        'last',
        'len',
        'lines',
        'lower',
        'map',
        'match',
        'max',
        'min',
        'num',
        'replace',
        'split',
        'str',
        'sum',
        'trim',
        'unique',
        'upper',
      ].sort(),
    );
  });
});

describe('runbook examples against realistic CLI output', () => {
  it('should compare stdout when a gate checks a status string', () => {
    const gate = compileExpr('stdout == "ACTIVE"');
    expect(evaluateBoolean(gate, { stdout: 'ACTIVE' })).toBe(true);
    expect(evaluateBoolean(gate, { stdout: 'ERROR' })).toBe(false);
  });

  it('should find a hypervisor with room for an amphora when checking capacity', () => {
    const expr = compileExpr(
      'any(hypervisors, it["Memory MB Used"] + amphora_ram_mb <= it["Memory MB"] * ram_allocation_ratio - reserved_host_memory_mb)',
    );
    const base = { amphora_ram_mb: 1024, ram_allocation_ratio: 1.0, reserved_host_memory_mb: 4096 };
    // compute-01 is full (253024 > 252904), compute-02 has room.
    expect(evaluateExpr(expr, { ...base, hypervisors: hypervisors.slice(0, 2) })).toBe(true);
    expect(evaluateExpr(expr, { ...base, hypervisors: hypervisors.slice(0, 1) })).toBe(false);
    expect(
      evaluateExpr(expr, { ...base, ram_allocation_ratio: 1.5, hypervisors: hypervisors.slice(0, 1) }),
    ).toBe(true);
  });

  it('should report the string-typed field when a hypervisor reports memory as text', () => {
    const err = evalError('all(hypervisors, it["Memory MB Used"] + 1024 <= it["Memory MB"] * 1.0)', {
      hypervisors,
    });
    expect(err.reason).toContain('the left side is string "257000": use num(...)');
    expect(err.notes).toEqual(['in all() at element [2] of its list']);
    expect(run('map(hypervisors, num(it["Memory MB"]))', { hypervisors })).toEqual([257000, 257000, 257000]);
  });

  it('should list down hypervisors by name when filtering and mapping', () => {
    expect(
      run('map(filter(hypervisors, it.State != "up"), it["Hypervisor Hostname"])', { hypervisors }),
    ).toEqual(['compute-03.cloud.example']);
  });

  it('should find amphora servers with no amphora record when looking for zombies', () => {
    const scope = { servers, amphora_ids: run('map(amphorae, it.id)', { amphorae }) };
    const zombies = run(
      'filter(servers, it.Name =~ "^amphora-" and not (replace(it.Name, "^amphora-", "") in amphora_ids))',
      scope,
    );
    expect(zombies).toEqual([servers[1], servers[3]]);
    expect(run('len(zombies) > 0', { zombies })).toBe(true);
    expect(run('join(map(zombies, it.ID), " ")', { zombies })).toBe('1c7a 3e9c');
  });

  it('should count the cluster with a generated suffix when matching names', () => {
    const osc = [
      { metadata: { name: 'capi-test-1-ab12c' } },
      { metadata: { name: 'capi-test-1-ab12c-extra' } },
      { metadata: { name: 'capi-test-10-zzzzz' } },
    ];
    expect(run('count(osc, it.metadata.name =~ "^capi-test-1-[a-z0-9]{5}$") == 1', { osc })).toBe(true);
  });

  it('should match multi-space output when the regex uses \\s', () => {
    const gate = compileExpr(String.raw`stdout =~ "cluster status:\\s+ready"`);
    expect(evaluateBoolean(gate, { stdout: 'name: capi-test-1\ncluster status:   ready\n' })).toBe(true);
    expect(evaluateBoolean(gate, { stdout: 'cluster status: degraded' })).toBe(false);
  });
});

describe('syntax errors', () => {
  it('should give the column and a caret when a closing parenthesis is missing', () => {
    const err = syntaxError('any(lbs, it.x == "A"');
    expect(err.code).toBe(ErrorCode.ExpressionSyntax);
    expect(err).toBeInstanceOf(CapiError);
    expect(err.column).toBe(21);
    expect(err.message).toBe(
      [
        "expected ')' to close 'any(' from column 4, but found the end of the expression at column 21:",
        '  any(lbs, it.x == "A"',
        '                      ^',
      ].join('\n'),
    );
  });

  it('should ask for a comma or the closer when a token follows a complete argument', () => {
    const err = syntaxError('any(lbs it.x)');
    expect(err.reason).toBe("expected ',' or ')' to close 'any(' from column 4, but found 'it'");
    expect(err.column).toBe(9);
  });

  it('should fail at compile time naming a close match when the function is unknown', () => {
    const err = syntaxError('fliter(lbs, it.x == 1)');
    expect(err.reason).toContain("unknown function 'fliter': did you mean 'filter'?");
    expect(err.column).toBe(1);
    expect(syntaxError('x + frobnicate(1)').column).toBe(5);
  });

  it('should fail at compile time when a function gets the wrong number of arguments', () => {
    expect(syntaxError('len(a, b)').reason).toBe(
      'len() takes 1 argument but got 2: usage is len(listOrString)',
    );
    expect(syntaxError('count()').reason).toContain('count() takes 1 to 2 arguments but got 0');
  });

  it('should name the replacement when an operator from another language is used', () => {
    expect(syntaxError('a && b').reason).toContain("use 'and' instead of '&&'");
    expect(syntaxError('a || b').reason).toContain("use 'or' instead of '||'");
    expect(syntaxError('!a').reason).toContain("use 'not' instead of '!'");
    expect(syntaxError('a = 1').reason).toContain("use '=='");
    expect(syntaxError('x.lower()').reason).toContain('lower(x) rather than x.lower()');
  });

  it('should point at the opening quote when a string is unterminated', () => {
    const err = syntaxError('x == "ACTIVE');
    expect(err.reason).toBe('unterminated string: add the closing "');
    expect(err.column).toBe(6);
  });

  it('should reject typographic quotes pasted from chat when lexing', () => {
    expect(syntaxError('x == \u201cACTIVE\u201d').reason).toContain('typographic quote');
  });

  it('should reject empty input and trailing tokens when parsing', () => {
    expect(syntaxError('  ').reason).toBe('the expression is empty');
    const err = syntaxError('a b');
    expect(err.reason).toContain("unexpected 'b' after a complete expression");
    expect(err.column).toBe(3);
  });

  it('should report line and column when the expression spans several lines', () => {
    const err = syntaxError('all(lbs,\n  it.x == )');
    expect(err.line).toBe(2);
    expect(err.column).toBe(11);
    expect(err.message).toBe(
      "expected a value but found ')' at line 2, column 11:\n    it.x == )\n            ^",
    );
  });

  it('should reject a literal regex at compile time when it does not compile', () => {
    const err = syntaxError('x =~ "(unclosed"');
    expect(err.reason).toContain('regex "(unclosed" does not compile');
    expect(err.column).toBe(6);
    expect(syntaxError('replace(x, "[", "")').reason).toContain('does not compile');
  });

  it('should reject a dynamic regex at evaluation when it does not compile', () => {
    const err = evalError('x =~ p', { x: 'a', p: '(' });
    expect(err.reason).toContain('regex "(" does not compile');
  });

  it('should fail with a str() hint when matching a regex against a number', () => {
    expect(evalError('x =~ "1"', { x: 1 }).reason).toContain('use str(...)');
    expect(evalError('x =~ "1"', { x: null }).reason).toContain('is null');
  });
});

describe('limits', () => {
  it('should accept an expression at the length limit and refuse one over it', () => {
    const atLimit = `1${' + 1'.repeat((MAX_EXPRESSION_LENGTH - 1) / 4)}`.padEnd(MAX_EXPRESSION_LENGTH, ' ');
    expect(atLimit.length).toBe(MAX_EXPRESSION_LENGTH);
    expect(run(atLimit)).toBe(500);
    const err = syntaxError(`${atLimit}1`);
    expect(err.reason).toContain(`over the limit of ${MAX_EXPRESSION_LENGTH}`);
  });

  it('should accept nesting at the depth limit and refuse one level more', () => {
    const nested = (n: number) => `${'('.repeat(n)}1${')'.repeat(n)}`;
    expect(run(nested(MAX_NESTING_DEPTH))).toBe(1);
    expect(syntaxError(nested(MAX_NESTING_DEPTH + 1)).reason).toContain(
      `nested more than ${MAX_NESTING_DEPTH} levels deep`,
    );
    expect(syntaxError(`${'['.repeat(200)}${']'.repeat(200)}`).reason).toContain('nested more than');
    expect(syntaxError(`${'-'.repeat(100)}1`).reason).toContain('nested more than');
  });

  it('should refuse regexes over 200 characters when compiling or evaluating', () => {
    const long = 'a'.repeat(201);
    expect(syntaxError(`x =~ "${long}"`).reason).toContain('201 characters long, over the limit of 200');
    expect(evalError('x =~ p', { x: 'a', p: long }).reason).toContain('over the limit of 200');
    expect(run('x =~ p', { x: 'a'.repeat(200), p: 'a'.repeat(200) })).toBe(true);
  });

  it('should refuse nested repetition when a regex could backtrack exponentially', () => {
    expect(syntaxError('x =~ "^(a+)+$"').reason).toContain('repeats a group that itself repeats');
    expect(syntaxError('x =~ "(\\\\w*\\\\.)*x"').reason).toContain('repeats a group');
    expect(syntaxError('x =~ "((ab)+c)*"').reason).toContain('repeats a group');
    expect(run('x =~ "^(ab)+[a-z]{5}(\\\\d+)?$"', { x: 'ababxxxxx12' })).toBe(true);
    expect(run('x =~ "[(a+)]+"', { x: 'a' })).toBe(true);
  });

  it('should reuse the compiled RegExp when the same pattern is seen again', () => {
    const first = compileRegex('^capi-[a-z]+$');
    expect(first).toBeInstanceOf(RegExp);
    expect(compileRegex('^capi-[a-z]+$')).toBe(first);
    expect(compileRegex('^capi-[a-z]+$', true)).not.toBe(first);
  });
});

describe('freeVariables', () => {
  it('should list scope names sorted and unique when an expression reads them', () => {
    const expr = compileExpr(
      'any(hypervisors, it["Memory MB Used"] + amphora_ram_mb <= it["Memory MB"] * ram_allocation_ratio - reserved_host_memory_mb) and amphora_ram_mb > 0',
    );
    expect(freeVariables(expr)).toEqual([
      'amphora_ram_mb',
      'hypervisors',
      'ram_allocation_ratio',
      'reserved_host_memory_mb',
    ]);
  });

  it('should exclude it and include outer names when lambdas nest', () => {
    const expr = compileExpr('any(clusters, all(it.nodes, it.ready == want and it[key] != null))');
    expect(freeVariables(expr)).toEqual(['clusters', 'key', 'want']);
  });

  it('should not list function names or field names when they look like variables', () => {
    expect(freeVariables(compileExpr('len(x.count) + count'))).toEqual(['count', 'x']);
  });

  it('should list names from every segment when given a template', () => {
    const t = compileTemplate('LB {lb.id} on {host} ({lb.name}) {{not_a_var}}');
    expect(freeVariables(t)).toEqual(['host', 'lb']);
    expect(templateFreeVariables(t)).toEqual(['host', 'lb']);
  });
});

describe('templates', () => {
  const scope = { lb: lbs[1], zombies: ['1c7a', '3e9c'], nothing: null };

  it('should substitute str() of each segment when rendering', () => {
    expect(renderTemplate('LB {lb.id} is {lb.provisioning_status}', scope)).toBe(
      'LB 7a1d9e3b-2c4f-4d8a-b6e5-1f0a2b3c4d5e is ERROR',
    );
    expect(renderTemplate('zombies: {zombies} count={len(zombies)} none=[{nothing}]', scope)).toBe(
      'zombies: ["1c7a","3e9c"] count=2 none=[]',
    );
  });

  it('should keep doubled braces as literal braces when rendering', () => {
    expect(renderTemplate('{{"id": "{lb.name}"}}', scope)).toBe('{"id": "capi-test-1-kubeapi"}');
    expect(renderTemplate('{{lb.id}}', scope)).toBe('{lb.id}');
  });

  it('should not end a segment at a brace inside a quoted string when the segment holds a regex', () => {
    expect(renderTemplate('suffix={match(lb.name, "-([a-z]{7})$")}!', scope)).toBe('suffix=kubeapi!');
    expect(renderTemplate("{'}'}", scope)).toBe('}');
  });

  it('should point into the template when a segment has a syntax error', () => {
    const err = templateError('LB {lb.id +} is down');
    expect(err.column).toBe(12);
    expect(err.message).toBe(
      [
        'expected a value but the expression ended at column 12:',
        '  LB {lb.id +} is down',
        '             ^',
      ].join('\n'),
    );
    expect(templateError('x {fliter(a, it)}').column).toBe(4);
  });

  it('should reject unbalanced and empty braces when compiling a template', () => {
    expect(templateError('a } b').reason).toContain("unmatched '}'");
    expect(templateError('a } b').column).toBe(3);
    expect(templateError('a {b').reason).toContain("unclosed '{'");
    expect(templateError('a { } b').reason).toContain("empty '{}'");
  });

  it('should render a compiled template again with a new scope when reused', () => {
    const t = compileTemplate('{name}: {status}');
    expect(renderCompiledTemplate(t, { name: 'a', status: 'ACTIVE' })).toBe('a: ACTIVE');
    expect(renderCompiledTemplate(t, { name: 'b', status: 1 })).toBe('b: 1');
    expect(() => renderCompiledTemplate(t, { name: 'c' })).toThrow("unknown variable 'status'");
  });

  it('should render text without segments unchanged when there are no braces', () => {
    expect(renderTemplate('plain text', {})).toBe('plain text');
    expect(compileTemplate('plain').parts).toEqual(['plain']);
  });
});

describe('default() falling back', () => {
  it('should say which field was missing when default() falls back outside a list function, and stay quiet inside one', () => {
    const paths: (string | undefined)[] = [];
    const onFallback = (p: string | undefined) => paths.push(p);
    const out = { items: [{ name: 'a' }, { name: 'b', status: { ready: true } }] };
    expect(
      evaluateExpr(compileExpr('default(out.health_status, "unreadable")'), { out }, { onFallback }),
    ).toBe('unreadable');
    expect(evaluateExpr(compileExpr('default(out["Image Name"], "")'), { out }, { onFallback })).toBe('');
    expect(
      evaluateExpr(compileExpr('default(find(out.items, it.name == "z"), 1)'), { out }, { onFallback }),
    ).toBe(1);
    // A field missing from some elements is data, not a changed shape.
    expect(
      evaluateExpr(compileExpr('map(out.items, default(it.status.ready, false))'), { out }, { onFallback }),
    ).toEqual([false, true]);
    expect(evaluateExpr(compileExpr('default(out.items, [])'), { out }, { onFallback })).toHaveLength(2);
    expect(paths).toEqual(['out.health_status', 'out["Image Name"]', undefined]);
  });
});
