/**
 * What a juju unit shows of its state: haproxy's `show stat` CSV and its rendered haproxy.cfg, and
 * the conductor's launch arguments. Kept free of zod so the stand-ins that print them start fast.
 */
import type { JujuUnit } from './juju-model.js';

/** The conductor's base arguments, as the init script assembles DAEMON_ARGS before /etc/default. */
export const CONDUCTOR_BASE_ARGS =
  '--config-file=/etc/magnum/magnum.conf --log-file=/var/log/magnum/magnum-conductor.log';
export const CONDUCTOR_CONFIG_DIR_ARG = '--config-dir /etc/magnum/magnum.conf.d';

// ---------------------------------------------------------------------------------------------
// haproxy's admin socket

/** `show stat` columns of HAProxy 2.4 (Ubuntu 22.04), in order. */
const STAT_FIELDS = [
  'pxname',
  'svname',
  'qcur',
  'qmax',
  'scur',
  'smax',
  'slim',
  'stot',
  'bin',
  'bout',
  'dreq',
  'dresp',
  'ereq',
  'econ',
  'eresp',
  'wretr',
  'wredis',
  'status',
  'weight',
  'act',
  'bck',
  'chkfail',
  'chkdown',
  'lastchg',
  'downtime',
  'qlimit',
  'pid',
  'iid',
  'sid',
  'throttle',
  'lbtot',
  'tracked',
  'type',
  'rate',
  'rate_lim',
  'rate_max',
  'check_status',
  'check_code',
  'check_duration',
  'hrsp_1xx',
  'hrsp_2xx',
  'hrsp_3xx',
  'hrsp_4xx',
  'hrsp_5xx',
  'hrsp_other',
  'hanafail',
  'req_rate',
  'req_rate_max',
  'req_tot',
  'cli_abrt',
  'srv_abrt',
  'comp_in',
  'comp_out',
  'comp_byp',
  'comp_rsp',
  'lastsess',
  'last_chk',
  'last_agt',
  'qtime',
  'ctime',
  'rtime',
  'ttime',
  'agent_status',
  'agent_code',
  'agent_duration',
  'check_desc',
  'agent_desc',
  'check_rise',
  'check_fall',
  'check_health',
  'agent_rise',
  'agent_fall',
  'agent_health',
  'addr',
  'cookie',
  'mode',
  'algo',
  'conn_rate',
  'conn_rate_max',
  'conn_tot',
  'intercepted',
  'dcon',
  'dses',
  'wrew',
  'connect',
  'reuse',
  'cache_lookups',
  'cache_hits',
  'srv_icur',
  'src_ilim',
  'qtime_max',
  'ctime_max',
  'rtime_max',
  'ttime_max',
  'eint',
  'idle_conn_cur',
  'safe_conn_cur',
  'used_conn_cur',
  'need_conn_est',
] as const;
type StatField = (typeof STAT_FIELDS)[number];

function statLine(values: Partial<Record<StatField, string | number>>): string {
  return `${STAT_FIELDS.map((f) => String(values[f] ?? '')).join(',')},`;
}

/** The CSV `echo "show stat" | socat stdio /var/run/haproxy/admin.sock` prints on `unit`. */
export function showStat(unit: JujuUnit, nowMs: number): string {
  const h = unit.haproxy;
  if (h === null) return '';
  const secs = (since: number) => Math.max(0, Math.round((nowMs - since) / 1000));
  const lines = [`# ${STAT_FIELDS.join(',')}`];
  lines.push(
    statLine({
      pxname: 'stats',
      svname: 'FRONTEND',
      scur: 0,
      slim: 20000,
      status: 'OPEN',
      pid: 1,
      iid: 2,
      sid: 0,
      type: 0,
      mode: 'http',
    }),
    statLine({
      pxname: 'stats',
      svname: 'BACKEND',
      status: 'UP',
      weight: 0,
      act: 0,
      bck: 0,
      lastchg: secs(h.startedAt),
      downtime: 0,
      pid: 1,
      iid: 2,
      sid: 0,
      type: 1,
      mode: 'http',
      algo: 'roundrobin',
    }),
  );
  h.frontends.forEach((f, i) => {
    const iid = 3 + i * 2;
    lines.push(
      statLine({
        pxname: `tcp-in_${f.service}`,
        svname: 'FRONTEND',
        scur: 0,
        slim: 20000,
        status: 'OPEN',
        pid: 1,
        iid,
        sid: 0,
        type: 0,
        mode: 'http',
      }),
    );
    const backend = `${f.service}_${unit.address}`;
    const rows = h.rows.filter((r) => r.backend === backend);
    rows.forEach((r, j) => {
      const up = r.status === 'UP';
      lines.push(
        statLine({
          pxname: backend,
          svname: r.server,
          qcur: 0,
          qmax: 0,
          scur: 0,
          smax: up ? 4 : 0,
          stot: up ? 1843 : 0,
          bin: 0,
          bout: 0,
          dresp: 0,
          econ: 0,
          eresp: 0,
          wretr: 0,
          wredis: 0,
          status: r.status,
          weight: 1,
          act: 1,
          bck: 0,
          chkfail: up ? 0 : 1,
          chkdown: up ? 0 : 1,
          lastchg: secs(r.lastChange),
          downtime: up ? 0 : secs(r.lastChange),
          pid: 1,
          iid: iid + 1,
          sid: j + 1,
          lbtot: up ? 1843 : 0,
          type: 2,
          rate: 0,
          rate_max: up ? 3 : 0,
          // D-045: a plaintext check against the TLS backend is answered 400 (plain HTTP to an SSL port).
          check_status: up ? 'L7OK' : 'L7STS',
          check_code: up ? 200 : 400,
          check_duration: up ? 3 : 1,
          cli_abrt: 0,
          srv_abrt: 0,
          lastsess: up ? 2 : -1,
          last_chk: up ? 'OK' : 'HTTP status check returned code <400>',
          check_desc: up ? 'Layer7 check passed' : 'Layer7 wrong status',
          check_rise: 2,
          check_fall: 3,
          check_health: up ? 4 : 0,
          addr: r.addr,
          mode: 'http',
        }),
      );
    });
    const anyUp = rows.some((r) => r.status === 'UP');
    lines.push(
      statLine({
        pxname: backend,
        svname: 'BACKEND',
        status: anyUp ? 'UP' : 'DOWN',
        weight: rows.filter((r) => r.status === 'UP').length,
        act: rows.filter((r) => r.status === 'UP').length,
        bck: 0,
        chkdown: rows.filter((r) => r.status === 'DOWN').length,
        lastchg: secs(h.startedAt),
        downtime: anyUp ? 0 : secs(h.startedAt),
        pid: 1,
        iid: iid + 1,
        sid: 0,
        type: 1,
        mode: 'http',
        algo: 'leastconn',
      }),
    );
  });
  return `${lines.join('\n')}\n\n`;
}

/** /etc/haproxy/haproxy.cfg as the charm renders it (charmhelpers openstack template). */
export function haproxyConfig(unit: JujuUnit): string {
  const h = unit.haproxy;
  if (h === null) return '';
  const out = [
    'global',
    '    log /var/lib/haproxy/dev/log local0',
    '    log /var/lib/haproxy/dev/log local1 notice',
    '    maxconn 20000',
    '    user haproxy',
    '    group haproxy',
    '    spread-checks 0',
    '    stats socket /var/run/haproxy/admin.sock mode 600 level admin',
    '    stats timeout 2m',
    '',
    'defaults',
    '    log global',
    '    mode tcp',
    '    option tcplog',
    '    option dontlognull',
    '    retries 3',
    '    timeout queue 9000',
    '    timeout connect 9000',
    '    timeout client 90000',
    '    timeout server 90000',
    '',
    'listen stats',
    '    bind 127.0.0.1:8888',
    '    mode http',
    '    stats enable',
    '    stats hide-version',
    '    stats uri /',
    '',
  ];
  for (const f of h.frontends) {
    const backend = `${f.service}_${unit.address}`;
    out.push(
      `frontend tcp-in_${f.service}`,
      `    bind *:${f.port}`,
      `    bind :::${f.port}`,
      `    default_backend ${backend}`,
      '',
      `backend ${backend}`,
      '    balance leastconn',
      '    option httpchk GET /healthcheck',
      '    http-check expect status 200',
      ...h.rows
        .filter((r) => r.backend === backend)
        .map((r) => `    server ${r.server} ${r.addr} check inter 2000 rise 2 fall 3`),
      '',
    );
  }
  if (h.configAlert !== null) out.push('    # capi-sim: this file does not parse (see haproxy -c)', '');
  return out.join('\n');
}
