import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["gen/**", "node_modules/**", ".tools/**", ".run/**", "dist/**", ".bench-build/**", ".build/**", "test/support/*.cjs", "examples/gen/**", "examples/node_modules/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    // The examples are plain JavaScript run by Node.
    files: ["examples/**/*.js"],
    languageOptions: { globals: { process: "readonly", console: "readonly", Buffer: "readonly" } },
  },
  {
    rules: {
      "@typescript-eslint/no-non-null-assertion": "off",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_" }],
    },
  },
);
