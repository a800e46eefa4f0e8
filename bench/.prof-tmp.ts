import { Cell, removeInstalls } from '../test/helpers/cni.js';
process.env.CFNET_TEST_EXECUTOR_LOG = 'info';
const cell = await Cell.create();
try {
  await cell.startExecutor();
  const ctr = await cell.newContainer();
  for (let i = 0; i < 12; i++) {
    const base = { containerId: `p-${i}`, netns: ctr, ifname: 'eth0', config: cell.config({runtimeConfig: { portMappings: [{ host_port: 61001, container_port: 8080 }], netOutRules: [{ protocol: 1, networks: [{ start: '192.0.2.10', end: '192.0.2.10' }], ports: [{ start: 80, end: 80 }] }]}}), mode: 'executor' as const };
    const a = await cell.call({ command: 'ADD', ...base });
    const d = await cell.call({ command: 'DEL', ...base });
    console.log('add', a.ms.toFixed(1), 'del', d.ms.toFixed(1), a.code, d.code);
  }
  console.log(cell.log.split("\n").filter((l) => /attached|detached/.test(l)).slice(-8).map((l) => l.replace(/.*"ip"/, '')).join('\n'));
} finally { await cell.cleanup(); await removeInstalls(); }
