package org.adaptiverag.esnode.modules;

import org.apache.lucene.analysis.CharArraySet;
import org.apache.lucene.analysis.en.EnglishAnalyzer;
import org.elasticsearch.index.analysis.AbstractIndexAnalyzerProvider;

/**
 * The {@code english} analyzer, as analysis-common's provider builds it with default settings:
 * Lucene's {@link EnglishAnalyzer} (standard tokenizer, possessive filter, lowercase, the 33 English
 * stopwords, Porter stemmer), so an index created on this node analyses text exactly as a real
 * cluster does. Custom {@code stopwords} / {@code stem_exclusion} are not read: the retriever never
 * sets them.
 */
final class EnglishAnalyzerProvider extends AbstractIndexAnalyzerProvider<EnglishAnalyzer> {

    private final EnglishAnalyzer analyzer = new EnglishAnalyzer(EnglishAnalyzer.ENGLISH_STOP_WORDS_SET, CharArraySet.EMPTY_SET);

    EnglishAnalyzerProvider(String name) {
        super(name);
    }

    @Override
    public EnglishAnalyzer get() {
        return analyzer;
    }
}
