/**
 * `npm run demo`: the whole system on a local control plane. It needs the operator
 * and the sidecar; until they exist it says so and points at the control plane.
 */
console.error(`The demo runs the operator, sidecars, the upstream emulator and a load generator
together; it arrives with the operator. Meanwhile \`npm run cluster\` starts the local
control plane with the sluice API installed.`);
process.exit(1);
