// hnstudio tokenize: the 77 CLIP token ids of texts, as plain CLIP tokenization gives them to
// SD1's text encoder (no prompt emphasis), printed as one JSON array.

#include "app/cli/CliSupport.h"
#include "app/cli/Commands.h"

#include "core/Error.h"
#include "core/text/ClipTokenizer.h"

#include <QJsonArray>
#include <QJsonDocument>

namespace studio::cli {

namespace {

QString vocabularyPath(const QCommandLineParser& parser)
{
    if (parser.isSet(QStringLiteral("vocab"))) {
        return parser.value(QStringLiteral("vocab"));
    }
    try {
        return ClipTokenizer::locate();
    } catch (const Error& error) {
        throw Error(error.message() + QStringLiteral(" Or pass --vocab PATH."));
    }
}

QJsonArray idsJson(const std::vector<int>& ids)
{
    QJsonArray array;
    for (int id : ids) {
        array.append(id);
    }
    return array;
}

void describeOptions(QCommandLineParser& parser)
{
    parser.setApplicationDescription(QStringLiteral(
        "Prints the CLIP token ids of each TEXT as openai/CLIP's tokenizer gives them: 49406\n"
        "(start), up to 75 BPE ids, 49407 (end), padded to 77 with 49407 as for SD1. Prompt\n"
        "emphasis such as (word:1.2) is not parsed. Output: one JSON array holding one array of\n"
        "77 ids per TEXT."));
    parser.addHelpOption();
    parser.addOption({QStringLiteral("vocab"),
                      QStringLiteral("The CLIP vocabulary: bpe_simple_vocab_16e6.txt[.gz], a "
                                     "vocab.json with merges.txt beside it, or a folder holding "
                                     "them. Default: searched in the Hugging Face cache."),
                      QStringLiteral("PATH")});
    parser.addPositionalArgument(
        QStringLiteral("TEXT"),
        QStringLiteral("A text to tokenize; quote texts with spaces, put -- "
                       "before texts that start with '-'."),
        QStringLiteral("TEXT..."));
}

int tokenize(const QStringList& arguments)
{
    QCommandLineParser parser;
    describeOptions(parser);
    if (!parseArguments(parser, arguments)) {
        return kExitOk;
    }
    const QStringList texts = parser.positionalArguments();
    if (texts.isEmpty()) {
        failUsage(QStringLiteral("give at least one TEXT"));
    }

    const ClipTokenizer tokenizer(vocabularyPath(parser));
    QJsonArray result;
    for (const QString& text : texts) {
        result.append(idsJson(tokenizer.tokenize77(text)));
    }
    out() << QJsonDocument(result).toJson(QJsonDocument::Compact) << '\n';
    out().flush();
    return kExitOk;
}

} // namespace

int runTokenize(const QStringList& arguments)
{
    return runCommand(QStringLiteral("tokenize"), [&] { return tokenize(arguments); });
}

} // namespace studio::cli
