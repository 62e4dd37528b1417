// Builds the console into ../src/outcrop/console/static (committed, shipped as package data).
// Deterministic output: content-hashed file names, no timestamps, no source maps.
import { defineConfig } from "vitest/config";

export default defineConfig({
  base: "/_outcrop/console/",
  esbuild: { jsx: "automatic", jsxImportSource: "preact", legalComments: "none" },
  build: {
    outDir: "../src/outcrop/console/static",
    emptyOutDir: true,
    sourcemap: false,
    target: "es2022",
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
  },
  test: {
    include: ["test/**/*.test.ts"],
    environment: "node",
  },
});
