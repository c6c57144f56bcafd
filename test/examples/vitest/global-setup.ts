import { kmslabGlobalSetup } from '../../../src/vitest/global-setup.js';

// In a project: import { kmslabGlobalSetup } from 'kmslab/vitest/global-setup';
export default kmslabGlobalSetup({ seed: 'ci' });
