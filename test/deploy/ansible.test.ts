import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { verifyPassword } from '../../cloud/auth/passwords.ts';
import { loadCloudConfig } from '../../cloud/config/schema.ts';
import { loadDaemonConfig } from '../../daemon/config/load.ts';

const run = promisify(execFile);
const repo = join(import.meta.dirname, '../..');
const ansibleDir = join(repo, 'deploy/ansible');

interface ToolResult {
  code: number;
  output: string;
}

async function tool(
  cmd: string,
  args: string[],
  cwd: string,
  env: NodeJS.ProcessEnv = {},
): Promise<ToolResult> {
  try {
    const { stdout, stderr } = await run(cmd, args, {
      cwd,
      timeout: 60_000,
      maxBuffer: 16 * 1024 * 1024,
      env: {
        ...process.env,
        ANSIBLE_NOCOLOR: '1',
        NO_COLOR: '1',
        ANSIBLE_CONFIG: join(ansibleDir, 'ansible.cfg'),
        ...env,
      },
    });
    return { code: 0, output: `${stdout}${stderr}` };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

let tmp = '';
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'sw-ansible-'));
  // the config tasks validate with the release's dist/*-check-config.mjs
  const { buildAll } = await import('../../scripts/build.mjs');
  await buildAll({ quiet: true });
}, 60_000);
afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('ansible: static checks', () => {
  it('site.yml passes ansible-playbook --syntax-check with the example inventory', async () => {
    const r = await tool(
      'ansible-playbook',
      ['-i', 'inventory.example.yml', 'site.yml', '--syntax-check'],
      ansibleDir,
    );
    expect(r.output).toContain('playbook: site.yml');
    expect(r.code, r.output).toBe(0);
  });

  it('the example inventory puts sensors and the cloud in their groups with per-host sensor vars', async () => {
    const r = await tool('ansible-inventory', ['-i', 'inventory.example.yml', '--list'], ansibleDir);
    expect(r.code, r.output).toBe(0);
    const inv = JSON.parse(r.output.slice(r.output.indexOf('{'))) as {
      _meta: { hostvars: Record<string, Record<string, unknown>> };
      sensors: { hosts: string[] };
      cloud: { hosts: string[] };
    };
    expect(inv.cloud.hosts).toHaveLength(1);
    expect(inv.sensors.hosts.length).toBeGreaterThanOrEqual(2);
    for (const host of inv.sensors.hosts) {
      const vars = inv._meta.hostvars[host]!;
      for (const key of [
        'sensor_id',
        'sensor_room',
        'sensor_latitude',
        'sensor_longitude',
        'sensor_address',
      ]) {
        expect(vars[key], `${host}.${key}`).toBeDefined();
      }
      expect(String(vars.sensor_alsa_device)).toMatch(/^(plug)?hw:/);
      expect(vars.sensor_mqtt_url).toMatch(/^mqtts:\/\//);
    }
  });

  it('site.yml builds the release on the controller, deploys the cloud, then the sensors one host first with no failure tolerated', async () => {
    const plays = parseYaml(await readFile(join(ansibleDir, 'site.yml'), 'utf8')) as {
      hosts: string;
      serial?: (number | string)[];
      max_fail_percentage?: number;
      roles: { role: string }[];
    }[];
    expect(plays.map((p) => p.hosts)).toEqual(['localhost', 'cloud', 'sensors']);
    const sensors = plays[2]!;
    expect(sensors.serial?.[0]).toBe(1);
    expect(sensors.max_fail_percentage).toBe(0);
    expect(sensors.roles.map((r) => r.role)).toEqual(['common', 'sensor']);
  });

  it('vault.example.yml holds placeholders only, and the example inventory no secrets', async () => {
    const vault = parseYaml(await readFile(join(ansibleDir, 'vault.example.yml'), 'utf8')) as Record<
      string,
      unknown
    >;
    const leaves: [string, unknown][] = [];
    const walk = (v: unknown, path: string) => {
      if (v && typeof v === 'object') for (const [k, c] of Object.entries(v)) walk(c, `${path}.${k}`);
      else leaves.push([path, v]);
    };
    walk(vault, 'vault');
    const secrets = leaves.filter(([path]) => !/\.(username|role)$/.test(path));
    expect(secrets.length).toBeGreaterThan(5);
    for (const [path, value] of secrets) expect(String(value), path).toContain('CHANGE_ME');
    const inventory = await readFile(join(ansibleDir, 'inventory.example.yml'), 'utf8');
    expect(inventory).not.toMatch(/^\s*[a-z_]*(password|secret|token|pass|key_pem):/im);
  });

  it('ansible-lint passes with the production profile (offline)', async () => {
    const r = await tool('ansible-lint', ['--offline', '--profile', 'production', '--nocolor'], ansibleDir);
    expect(r.output).toMatch(/Passed with production profile: 0 failure\(s\), 0 warning\(s\)/);
    expect(r.code, r.output).toBe(0);
  }, 90_000);

  // Proves the lint check above reads our roles: the same tree with one sloppy task fails.
  it('ansible-lint fails a copy of the roles with an unguarded shell task', async () => {
    const copy = join(tmp, 'lint-copy');
    await cp(ansibleDir, copy, { recursive: true });
    const tasks = join(copy, 'roles/sensor/tasks/main.yml');
    await writeFile(tasks, `${await readFile(tasks, 'utf8')}\n- ansible.builtin.shell: echo hi\n`);
    const r = await tool('ansible-lint', ['--offline', '--profile', 'production', '--nocolor'], copy);
    expect(r.code).not.toBe(0);
    expect(r.output).toMatch(/name\[missing\]|no-changed-when/);
  }, 90_000);
});

// The config tasks of both roles (roles/*/tasks/config.yml), run for real on localhost into a
// temp dir: the assertions, the templates, and the template `validate:` which loads the result
// with the daemon's and the cloud's own schema loaders from this checkout.
describe('ansible: rendered configs', () => {
  const passwords: Record<string, string> = {
    'hall-1': 'hall-1-test-password-0123',
    'stairs-2': 'stairs-2-test-password-4567',
  };
  const sessionSecret = 'test-session-secret-0123456789abcdef';

  interface Rendered {
    result: ToolResult;
    out: string;
  }

  /** Renders into `<tmp>/<name>/out`; the same name again renders onto the same files (a re-run). */
  async function render(
    name: string,
    sensors: Record<string, Record<string, unknown>>,
    sensorPlay: Record<string, unknown> = {},
    cloudVars: Record<string, unknown> = {},
    options: { limit?: string } = {},
  ): Promise<Rendered> {
    const dir = join(tmp, name);
    const out = join(dir, 'out');
    await mkdir(join(dir, 'group_vars/all'), { recursive: true });
    await mkdir(out, { recursive: true });
    const inventory = {
      all: {
        vars: { ansible_connection: 'local', ansible_python_interpreter: '/usr/bin/python3' },
        children: {
          cloud: {
            hosts: {
              'cloud-1': {
                cloud_web_public_url: 'https://cloud.example.org',
                screamwatch_config_dir: join(out, 'cloud-1'),
                ...cloudVars,
              },
            },
          },
          sensors: {
            // hall-1 sets its broker URL; the others derive it from the cloud group's host.
            // Each host renders into its own config dir (they share this machine); a host var,
            // so the sensor play's update of the cloud (--limit) finds the cloud's own.
            hosts: Object.fromEntries(
              Object.entries(sensors).map(([id, vars]) => [
                `${id}.local`,
                { screamwatch_config_dir: join(out, `${id}.local`), ...vars },
              ]),
            ),
          },
        },
      },
    };
    await writeFile(join(dir, 'hosts.yml'), toYaml(inventory));
    await writeFile(
      join(dir, 'group_vars/all/vault.yml'),
      toYaml({
        vault_sensor_mqtt_passwords: passwords,
        vault_cloud_session_secret: sessionSecret,
        vault_cloud_web_users: [],
      }),
    );
    const play = [
      {
        name: 'Cloud config',
        hosts: 'cloud',
        gather_facts: false,
        tasks: [
          {
            'ansible.builtin.file': {
              path: '{{ screamwatch_config_dir }}',
              state: 'directory',
              mode: '0755',
            },
          },
          { 'ansible.builtin.import_role': { name: 'cloud', tasks_from: 'config.yml' } },
        ],
      },
      {
        name: 'Sensor configs',
        hosts: 'sensors',
        gather_facts: false,
        ...sensorPlay,
        tasks: [
          {
            'ansible.builtin.file': {
              path: '{{ screamwatch_config_dir }}',
              state: 'directory',
              mode: '0755',
            },
          },
          { 'ansible.builtin.import_role': { name: 'sensor', tasks_from: 'config.yml' } },
        ],
      },
    ];
    await writeFile(join(dir, 'render.yml'), toYaml(play));
    const result = await tool(
      'ansible-playbook',
      [
        '-i',
        join(dir, 'hosts.yml'),
        join(dir, 'render.yml'),
        ...(options.limit ? ['--limit', options.limit] : []),
        // The validate step runs the release's dist/*-check-config.mjs: this checkout's build.
        '-e',
        JSON.stringify({
          screamwatch_install_dir: repo,
          screamwatch_user: 'root',
          screamwatch_node_bin: process.execPath,
          sensor_release_dir: repo,
          cloud_release_dir: repo,
        }),
      ],
      ansibleDir,
      { ANSIBLE_ROLES_PATH: join(ansibleDir, 'roles'), ANSIBLE_CALLBACKS_ENABLED: '' },
    );
    return { result, out };
  }

  const hall = {
    sensor_id: 'hall-1',
    sensor_name: 'Main hall, stage side',
    sensor_room: 'Main hall',
    sensor_latitude: 52.0907,
    sensor_longitude: 5.1214,
    sensor_accuracy: 5,
    sensor_address: '1 Example Street: "A" wing',
    sensor_alsa_device: 'plughw:CARD=Device,DEV=0',
    sensor_group: 'lobby',
    sensor_mqtt_url: 'mqtts://cloud.example.org:8883',
  };
  const stairs = { sensor_id: 'stairs-2', sensor_alsa_device: 'hw:1,0' };

  let good: Rendered;
  beforeAll(async () => {
    good = await render('good', { 'hall-1': hall, 'stairs-2': stairs });
  }, 120_000);

  it('renders a daemon.yaml per sensor that the daemon loads, with the inventory and vault values', async () => {
    expect(good.result.code, good.result.output).toBe(0);
    const file = join(good.out, 'hall-1.local/daemon.yaml');
    const config = loadDaemonConfig({ file, env: {} });
    expect(config.sensorId).toBe('hall-1');
    expect(config.audio.source).toBe('alsa:plughw:CARD=Device,DEV=0');
    expect(config.mqtt).toMatchObject({
      url: 'mqtts://cloud.example.org:8883',
      username: 'hall-1',
      password: passwords['hall-1'],
      caFile: null,
      rejectUnauthorized: true,
    });
    expect(config.location).toEqual({
      latitude: 52.0907,
      longitude: 5.1214,
      accuracy: 5,
      address: '1 Example Street: "A" wing',
      room: 'Main hall',
    });
    expect(config.stateDir).toBe('/var/lib/screamwatch');
    // Exactly the keys of the daemon's documented config, nothing extra.
    const raw = parseYaml(await readFile(file, 'utf8')) as Record<string, unknown>;
    expect(Object.keys(raw).sort()).toEqual(
      [
        'audio',
        'clips',
        'detection',
        'heartbeatIntervalS',
        'location',
        'log',
        'metrics',
        'mqtt',
        'sensorId',
        'stateDir',
        'topicRoot',
      ].sort(),
    );
    const minimal = loadDaemonConfig({ file: join(good.out, 'stairs-2.local/daemon.yaml'), env: {} });
    expect(minimal.audio.source).toBe('alsa:hw:1,0');
    expect(minimal.mqtt.url).toBe('mqtts://cloud-1:8883');
    expect(minimal.location.latitude).toBeNull();
  });

  it('renders a cloud.yaml the cloud loads, listing every sensor with an scrypt hash of its password', async () => {
    expect(good.result.code, good.result.output).toBe(0);
    const config = loadCloudConfig({ file: join(good.out, 'cloud-1/cloud.yaml'), env: {} });
    expect(config.sensors.map((s) => s.id)).toEqual(['hall-1', 'stairs-2']);
    expect(config.sensors[0]).toMatchObject({
      name: 'Main hall, stage side',
      room: 'Main hall',
      group: 'lobby',
      location: { latitude: 52.0907, longitude: 5.1214, accuracy: 5, address: '1 Example Street: "A" wing' },
    });
    expect(config.sensors[1]).toMatchObject({
      name: 'stairs-2',
      room: null,
      location: null,
      group: 'default',
    });
    expect(config.mqtt.allowAnonymous).toBe(false);
    expect(config.web.sessionSecret).toBe(sessionSecret);
    expect(config.web.publicUrl).toBe('https://cloud.example.org');
    expect(config.alerts.twilio.authToken).toBeNull();
    for (const { sensorId, passwordHash } of config.mqtt.sensors) {
      // The playbook's Python hash must verify with the cloud's TypeScript check.
      expect(await verifyPassword(passwords[sensorId]!, passwordHash), sensorId).toBe(true);
      expect(await verifyPassword('wrong-password-000', passwordHash)).toBe(false);
    }
  });

  it('renders the same cloud.yaml on a re-run (no needless broker restart)', async () => {
    const again = await render('again', { 'hall-1': hall, 'stairs-2': stairs });
    expect(again.result.code, again.result.output).toBe(0);
    const a = await readFile(join(good.out, 'cloud-1/cloud.yaml'), 'utf8');
    const b = await readFile(join(again.out, 'cloud-1/cloud.yaml'), 'utf8');
    expect(b).toBe(a);
  }, 90_000);

  it('refuses a placeholder password from vault.example.yml, naming the host', async () => {
    const saved = passwords['stairs-2']!;
    passwords['stairs-2'] = 'CHANGE_ME-stairs-2';
    try {
      const bad = await render('placeholder', { 'hall-1': hall, 'stairs-2': stairs });
      expect(bad.result.code).not.toBe(0);
      expect(bad.result.output).toMatch(/stairs-2\.local: sensor_id must be/);
    } finally {
      passwords['stairs-2'] = saved;
    }
  }, 90_000);

  // site.yml's own rollout settings around the sensor config tasks: the first Pi's bad config
  // must stop the rollout before any other Pi is touched.
  it('with site.yml rollout settings, a failure on the first sensor leaves the rest untouched', async () => {
    const site = parseYaml(await readFile(join(ansibleDir, 'site.yml'), 'utf8')) as Record<string, unknown>[];
    const { serial, max_fail_percentage } = site.find((p) => p.hosts === 'sensors')!;
    const fleet: Record<string, Record<string, unknown>> = {
      'hall-1': { ...hall, sensor_detection_k: 5, sensor_detection_n: 3 },
    };
    for (let i = 2; i <= 6; i++) fleet[`pi-${i}`] = { sensor_id: `pi-${i}` };
    for (let i = 2; i <= 6; i++) passwords[`pi-${i}`] = `pi-${i}-test-password-000`;
    const r = await render('rollout', fleet, { serial, max_fail_percentage });
    expect(r.result.code).not.toBe(0);
    expect(r.result.output).toMatch(/hall-1\.local/);
    expect(r.result.output).not.toMatch(/pi-[2-6]\.local/);
    await expect(readFile(join(r.out, 'pi-2.local/daemon.yaml'))).rejects.toThrow(/ENOENT/);
  }, 90_000);

  it('scale-out vars: external broker with a per-host client id, MONGODB_URI in the environment file only', async () => {
    const uri = 'mongodb://sw:mongo-secret-0123@db1.example.org,db2.example.org/screamwatch?replicaSet=rs0';
    const r = await render(
      'scale',
      { 'hall-1': hall },
      {},
      {
        cloud_mqtt_broker_url: 'mqtts://mqtt.example.org:8883',
        cloud_mqtt_broker_password: 'bridge-secret-0123',
        cloud_mongodb_uri: uri,
      },
    );
    expect(r.result.code, r.result.output).toBe(0);
    expect(r.result.output).not.toContain('mongo-secret-0123');
    const cloudDir = join(r.out, 'cloud-1');
    const yaml = await readFile(join(cloudDir, 'cloud.yaml'), 'utf8');
    expect(yaml).not.toContain('mongo-secret-0123');
    const cloud = loadCloudConfig({ file: join(cloudDir, 'cloud.yaml'), env: {} });
    expect(cloud.mqtt).toMatchObject({
      broker: 'mqtts://mqtt.example.org:8883',
      clientId: 'screamwatch-bridge-cloud-1',
      username: 'screamwatch-bridge',
      password: 'bridge-secret-0123',
      sharedGroup: 'screamwatch-bridges',
      sessionExpiryS: 60,
    });
    expect(await readFile(join(cloudDir, 'cloud.env'), 'utf8')).toContain(`MONGODB_URI=${uri}\n`);
    expect((await stat(join(cloudDir, 'cloud.env'))).mode & 0o777).toBe(0o640);
    // Without the vars: the embedded broker, and an environment file without a URI.
    const plain = loadCloudConfig({ file: join(good.out, 'cloud-1/cloud.yaml'), env: {} });
    expect(plain.mqtt.broker).toBeNull();
    expect(await readFile(join(good.out, 'cloud-1/cloud.env'), 'utf8')).not.toMatch(/^MONGODB_URI=/m);
  }, 90_000);

  it('with TLS material, installs cert, key and CA files and points both configs at them', async () => {
    const tls = join(tmp, 'tls');
    await mkdir(tls, { recursive: true });
    await run('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=cloud.example.org',
      '-keyout',
      join(tls, 'key.pem'),
      '-out',
      join(tls, 'cert.pem'),
    ]);
    const cert = await readFile(join(tls, 'cert.pem'), 'utf8');
    const key = await readFile(join(tls, 'key.pem'), 'utf8');
    const r = await render(
      'tls',
      { 'hall-1': { ...hall, sensor_mqtt_ca_pem: cert } },
      {},
      { cloud_mqtt_tls_cert_pem: cert, cloud_mqtt_tls_key_pem: key, cloud_mqtt_tls_port: 8883 },
    );
    expect(r.result.code, r.result.output).toBe(0);
    // The key went through a no_log loop: it must not show in Ansible's output.
    expect(r.result.output).not.toContain(key.split('\n')[1]!);
    const cloudDir = join(r.out, 'cloud-1');
    const cloud = loadCloudConfig({ file: join(cloudDir, 'cloud.yaml'), env: {} });
    expect(cloud.mqtt.tls).toEqual({
      port: 8883,
      certFile: join(cloudDir, 'tls/cert.pem'),
      keyFile: join(cloudDir, 'tls/key.pem'),
    });
    expect(await readFile(cloud.mqtt.tls.certFile!, 'utf8')).toBe(cert);
    expect(await readFile(cloud.mqtt.tls.keyFile!, 'utf8')).toBe(key);
    expect((await stat(cloud.mqtt.tls.keyFile!)).mode & 0o777).toBe(0o640);
    const daemon = loadDaemonConfig({ file: join(r.out, 'hall-1.local/daemon.yaml'), env: {} });
    expect(daemon.mqtt.caFile).toBe(join(r.out, 'hall-1.local/ca.pem'));
    expect(await readFile(daemon.mqtt.caFile!, 'utf8')).toBe(cert);
  }, 90_000);

  it("rejects a host var the daemon's schema refuses before it reaches the Pi", async () => {
    const bad = await render('bad-var', {
      'hall-1': { ...hall, sensor_detection_k: 5, sensor_detection_n: 3 },
    });
    expect(bad.result.code).not.toBe(0);
    expect(bad.result.output).toMatch(/failed to validate/);
    expect(bad.result.output).toMatch(/detection\.k: k must be <= n/);
  }, 90_000);

  it('metrics, Home Assistant and retention: off / the schema defaults unless set, and passed through when set', async () => {
    expect(good.result.code, good.result.output).toBe(0);
    const daemon = loadDaemonConfig({ file: join(good.out, 'hall-1.local/daemon.yaml'), env: {} });
    expect(daemon.metrics).toEqual({ port: null, host: '127.0.0.1' });
    const cloud = loadCloudConfig({ file: join(good.out, 'cloud-1/cloud.yaml'), env: {} });
    expect(cloud.metrics).toEqual({ port: null, host: '127.0.0.1' });
    expect(cloud.homeAssistant).toEqual({
      enabled: false,
      discoveryPrefix: 'homeassistant',
      screamOffAfterS: 30,
    });
    expect(cloud.store).toEqual({ retentionDays: 365, keepReviewedDays: 730 });

    const r = await render(
      'observability',
      { 'hall-1': { ...hall, sensor_metrics_port: 9465 } },
      {},
      {
        cloud_metrics_port: 9464,
        cloud_metrics_host: '10.0.0.5',
        cloud_home_assistant_enabled: true,
        cloud_home_assistant_discovery_prefix: 'ha',
        cloud_home_assistant_scream_off_after_s: 45,
        cloud_store_retention_days: 90,
        cloud_store_keep_reviewed_days: null,
      },
    );
    expect(r.result.code, r.result.output).toBe(0);
    expect(loadDaemonConfig({ file: join(r.out, 'hall-1.local/daemon.yaml'), env: {} }).metrics).toEqual({
      port: 9465,
      host: '127.0.0.1',
    });
    const on = loadCloudConfig({ file: join(r.out, 'cloud-1/cloud.yaml'), env: {} });
    expect(on.metrics).toEqual({ port: 9464, host: '10.0.0.5' });
    expect(on.homeAssistant).toEqual({ enabled: true, discoveryPrefix: 'ha', screamOffAfterS: 45 });
    expect(on.store).toEqual({ retentionDays: 90, keepReviewedDays: null });
    // the daemon's endpoint has no authentication: a non-loopback host is refused before the Pi
    const bad = await render('metrics-host', { 'hall-1': { ...hall, sensor_metrics_host: '0.0.0.0' } });
    expect(bad.result.code).not.toBe(0);
    expect(bad.result.output).toMatch(/metrics\.host: must be a loopback address/);
  }, 120_000);

  it('a cloud.yaml change that only adds a sensor is applied with a reload; any other change with a restart', async () => {
    const message = (r: Rendered) => /"msg": "cloud\.yaml ([^"]*)"/.exec(r.result.output)?.[1];
    const first = await render('apply', { 'hall-1': hall });
    expect(first.result.code, first.result.output).toBe(0);
    expect(message(first)).toBe('changed beyond the sensors (*): restart');
    const same = await render('apply', { 'hall-1': hall });
    expect(message(same)).toBe('unchanged');
    const added = await render('apply', { 'hall-1': hall, 'stairs-2': stairs });
    expect(added.result.code, added.result.output).toBe(0);
    expect(message(added)).toBe(
      'changed in the sensors and their credentials only: reload (SIGHUP), the bridge keeps running',
    );
    // the handlers: the reload is notified, the restart is not
    expect(added.result.output).toContain('RUNNING HANDLER [cloud : Reload screamwatch-cloud]');
    expect(added.result.output).not.toContain('RUNNING HANDLER [cloud : Restart screamwatch-cloud]');
    const moved = await render('apply', { 'hall-1': hall, 'stairs-2': stairs }, {}, { cloud_web_port: 8081 });
    expect(message(moved)).toBe('changed beyond the sensors (web): restart');
    const both = await render(
      'apply',
      { 'hall-1': hall },
      {},
      { cloud_web_port: 8081, cloud_mqtt_port: 1884 },
    );
    expect(message(both)).toBe('changed beyond the sensors (mqtt.port): restart');
  }, 180_000);

  it("--limit <new sensor>: the sensor play updates the cloud's sensor list and credentials itself, as a full run would render them", async () => {
    const before = await render('limit', { 'hall-1': hall });
    expect(before.result.code, before.result.output).toBe(0);
    const cloudYaml = join(before.out, 'cloud-1/cloud.yaml');

    // stairs-2 and yard-3 join the inventory; only they are in the run (one batch of two)
    passwords['yard-3'] = 'yard-3-test-password-8910';
    const fleet = { 'hall-1': hall, 'stairs-2': stairs, 'yard-3': { sensor_id: 'yard-3' } };
    const only = { limit: 'stairs-2.local:yard-3.local' };
    const limited = await render('limit', fleet, {}, {}, only);
    expect(limited.result.code, limited.result.output).toBe(0);
    // the cloud play had no host; the sensor play wrote the cloud's file (once for the batch)
    // and says it reloaded
    expect(limited.result.output).toMatch(/PLAY \[Cloud config\] \**\s+skipping: no hosts matched/);
    const updated = 'cloud-1: cloud.yaml updated with the sensors and their credentials: reloaded (SIGHUP)';
    expect(limited.result.output.split(updated)).toHaveLength(2);
    expect(limited.result.output).not.toContain('hall-1.local');
    const config = loadCloudConfig({ file: cloudYaml, env: {} });
    expect(config.sensors.map((x) => x.id)).toEqual(['hall-1', 'stairs-2', 'yard-3']);
    for (const id of ['stairs-2', 'yard-3']) {
      const hash = config.mqtt.sensors.find((c) => c.sensorId === id)!.passwordHash;
      expect(await verifyPassword(passwords[id]!, hash), id).toBe(true);
    }
    expect(config.web.sessionSecret).toBe(sessionSecret);
    // byte for byte what a full run renders for this inventory...
    const full = await render('limit-full', fleet);
    expect(await readFile(cloudYaml, 'utf8')).toBe(
      await readFile(join(full.out, 'cloud-1/cloud.yaml'), 'utf8'),
    );
    // ...so the next full run changes nothing, and a second limited run neither
    const rerun = await render('limit', fleet);
    expect(rerun.result.output).toContain('"msg": "cloud.yaml unchanged"');
    const again = await render('limit', fleet, {}, {}, only);
    expect(again.result.output).toContain('cloud-1: cloud.yaml already lists these sensors');
  }, 240_000);

  it('--limit <sensor> before the cloud was ever deployed: fails, saying to deploy the cloud first', async () => {
    const r = await render('limit-no-cloud', { 'hall-1': hall }, {}, {}, { limit: 'hall-1.local' });
    expect(r.result.code).not.toBe(0);
    expect(r.result.output).toMatch(/cloud-1 has no \S+\/cloud\.yaml: deploy the cloud first/);
  }, 90_000);
});
