import type { ServerOptions } from '../config.js'
import { LlmMemoryExtractor } from '../memory/llm-extractor.js'
import { RuleBasedExtractor, type MemoryExtractor } from '../memory/extractor.js'
import { BuiltinProvider } from './builtin.js'
import { OpenAiProvider } from './openai.js'
import type { Embedder, JsonCapableProvider, LlmProvider } from './provider.js'

function openAi (options: ServerOptions): OpenAiProvider {
  return new OpenAiProvider({
    apiKey: options.openaiApiKey as string,
    baseURL: options.openaiBaseUrl,
    model: options.llmModel,
    embeddingModel: options.embeddingModel
  })
}

/** The configured model: an OpenAI-compatible backend, or the offline built-in one. */
export function createLlm (options: ServerOptions): LlmProvider {
  if (options.llmProvider === 'openai') return openAi(options)
  return new BuiltinProvider({ tokenDelayMs: options.builtinTokenDelayMs })
}

/** Embeddings from the OpenAI-compatible backend when EMBEDDING_MODEL names one; none otherwise (BM25 alone). */
export function createEmbedder (options: ServerOptions): Embedder | undefined {
  return options.embeddingModel === undefined ? undefined : openAi(options)
}

/** A model that can answer in schema-constrained JSON extracts memories itself; otherwise the rules do. */
export function createExtractor (llm: LlmProvider): MemoryExtractor {
  return 'completeJson' in llm ? new LlmMemoryExtractor(llm as JsonCapableProvider) : new RuleBasedExtractor()
}
