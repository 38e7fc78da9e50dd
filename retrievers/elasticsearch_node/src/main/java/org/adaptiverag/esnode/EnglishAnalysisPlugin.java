package org.adaptiverag.esnode;

import java.util.Map;

import org.apache.lucene.analysis.CharArraySet;
import org.apache.lucene.analysis.en.EnglishAnalyzer;
import org.elasticsearch.index.analysis.AbstractIndexAnalyzerProvider;
import org.elasticsearch.index.analysis.AnalyzerProvider;
import org.elasticsearch.indices.analysis.AnalysisModule.AnalysisProvider;
import org.elasticsearch.plugins.AnalysisPlugin;
import org.elasticsearch.plugins.Plugin;

/**
 * The {@code english} analyzer.
 *
 * <p>A stock distribution gets it from the {@code analysis-common} module, which is not published on
 * Maven Central. Its provider there wraps Lucene's {@link EnglishAnalyzer} (standard tokenizer,
 * possessive filter, lowercase, the 33 English stopwords, Porter stemmer); this does the same, so an
 * index created here analyses text exactly as on a real cluster. Custom {@code stopwords} are not
 * supported: the retriever never sets them.
 */
public final class EnglishAnalysisPlugin extends Plugin implements AnalysisPlugin {

    @Override
    public Map<String, AnalysisProvider<AnalyzerProvider<? extends org.apache.lucene.analysis.Analyzer>>> getAnalyzers() {
        return Map.of("english", (indexSettings, environment, name, settings) -> new AbstractIndexAnalyzerProvider<EnglishAnalyzer>(name) {
            private final EnglishAnalyzer analyzer = new EnglishAnalyzer(EnglishAnalyzer.ENGLISH_STOP_WORDS_SET, CharArraySet.EMPTY_SET);

            @Override
            public EnglishAnalyzer get() {
                return analyzer;
            }
        });
    }
}
