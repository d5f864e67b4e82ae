import type { Command } from "commander";

export function registerBench(program: Command): void {
  program.command("bench").description("(not yet built)").action(() => {
    throw new Error("parapet bench is not built yet");
  });
}
