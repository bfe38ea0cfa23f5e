'use strict';
// The entry script of /lib/nodeos/init.blob, a V8 startup snapshot of node
// with init's boot path already loaded: images/bundle-init.js builds it with
//
//   node --jitless --snapshot-blob init.blob --build-snapshot init-snapshot.js BUNDLE
//
// and says why. This runs once, at image build time, on the build host: it
// evaluates the bundled modules, which only define things, and hands init's
// main to the snapshot. Nothing here may touch the build host.
const fs = require('fs');
const v8 = require('v8');

const [bundleFile] = process.argv.slice(2);
if (!bundleFile) throw new Error('usage: node --snapshot-blob BLOB --build-snapshot init-snapshot.js BUNDLE');

// While the snapshot is built, require() gives builtins only. The bundle's
// other requires (the addon, the console shell) happen after boot, through a
// require of /lib/nodeos made when the snapshot starts.
let runtimeRequire = null;
const requireOutsideBundle = (id) => (runtimeRequire ?? require)(id);

// Node warns that it has not yet verified vm in snapshot builders: vm's
// contexts made here might not survive into the snapshot. Only vm's compiler
// is used here, on the main context; every other warning still prints (and
// fails the image build).
const printWarning = process.listeners('warning');
process.removeAllListeners('warning');
process.on('warning', (w) => {
  if (!/built-in module "vm" works in user snapshot builder scripts/.test(w.message)) for (const print of printWarning) print(w);
});
const vm = require('vm');

// Every function compiled now, so the snapshot holds their bytecode: V8 would
// otherwise compile each at its first call, under TCG a quarter of init's
// time to the ready line. Through vm: code compiled by eval or new Function
// keeps its inner functions lazy even so.
v8.setFlagsFromString('--no-lazy');
const requireFromBundle = new vm.Script(fs.readFileSync(bundleFile, 'utf8'), { filename: '/lib/nodeos/init-bundle.js' })
  .runInThisContext()(requireOutsideBundle);
v8.setFlagsFromString('--lazy');
const init = requireFromBundle('./init');

v8.startupSnapshot.setDeserializeMainFunction(() => {
  // NODE_OPTIONS named this blob (the kernel command line puts it in init's
  // environment); a child that inherited it would start as init.
  delete process.env.NODE_OPTIONS;
  if (process.pid !== 1) {
    // How the image build checks the blob, and all anyone else gets.
    console.log(`init.blob: init's boot path is loaded (${typeof init.main}); not PID 1, so not booting`);
    return;
  }
  runtimeRequire = require('module').createRequire('/lib/nodeos/init.js');
  init.main({ startedFrom: 'snapshot' });
});
