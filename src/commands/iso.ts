import type { Command } from "commander";

export function registerIso(program: Command): void {
  program.command("iso").description("(not yet built)").action(() => {
    throw new Error("parapet iso is not built yet");
  });
}
