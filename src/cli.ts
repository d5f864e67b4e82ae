// The `parapet` command line: one sub-command per file in src/commands/.
import { Command } from "@commander-js/extra-typings";
import { registerRun } from "./commands/run.ts";
import { registerImage } from "./commands/image.ts";
import { registerIso } from "./commands/iso.ts";
import { registerBench } from "./commands/bench.ts";
import { registerKeygen } from "./commands/keygen.ts";
import { registerPolicy } from "./commands/policy.ts";
import { registerDisk } from "./commands/disk.ts";
import { registerLuks } from "./commands/luks.ts";
import { registerPreboot } from "./commands/preboot.ts";

const program = new Command();
program
  .name("parapet")
  .description("Build, boot and check Parapet, a thin security hypervisor, and its guests")
  .showHelpAfterError()
  .configureHelp({ sortSubcommands: true })
  // Usage errors (an option's value, a missing or conflicting option: src/lib/cliopts.ts) in
  // the same form as every other error, exit status 1. Sub-commands inherit this.
  .configureOutput({ outputError: (text, write) => write(`parapet: ${text.replace(/^error: /, "")}`) });

registerRun(program);
registerImage(program);
registerIso(program);
registerBench(program);
registerKeygen(program);
registerPolicy(program);
registerDisk(program);
registerLuks(program);
registerPreboot(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  process.stderr.write(`parapet: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
