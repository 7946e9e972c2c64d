/**
 * Writes config/certgate.schema.json from CONFIG_SCHEMA, the same source the validator uses
 * (`npm run schema`). test/unit/schema.test.ts fails when the committed file is stale.
 */
import { writeFileSync } from 'node:fs';
import { z } from 'zod';
import { CONFIG_SCHEMA } from './schema.js';

export function configJsonSchema(): string {
  const schema = z.toJSONSchema(CONFIG_SCHEMA, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  const out = {
    ...schema,
    $id: 'https://github.com/certgate/certgate/config/certgate.schema.json',
    title: 'certgate configuration',
  };
  return `${JSON.stringify(out, null, 2)}\n`;
}

const target = process.argv[2];
if (target !== undefined && process.argv[1]?.endsWith('write-schema.js')) {
  writeFileSync(target, configJsonSchema());
  console.log(`wrote ${target}`);
}
