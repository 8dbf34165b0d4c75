#include "app/cli/CliSupport.h"

#include "core/Error.h"

#include <cstdio>
#include <exception>

namespace studio::cli {

void failUsage(const QString& message)
{
    throw UsageError{message};
}

QTextStream& out()
{
    static QTextStream stream(stdout);
    return stream;
}

QTextStream& err()
{
    static QTextStream stream(stderr);
    return stream;
}

bool parseArguments(QCommandLineParser& parser, const QStringList& arguments)
{
    if (!parser.parse(arguments)) {
        failUsage(parser.errorText());
    }
    if (parser.isSet(QStringLiteral("help"))) {
        out() << parser.helpText();
        out().flush();
        return false;
    }
    return true;
}

int runCommand(const QString& commandName, const std::function<int()>& body)
{
    try {
        return body();
    } catch (const UsageError& error) {
        err() << "hnstudio " << commandName << ": " << error.message << '\n'
              << "Run 'hnstudio " << commandName << " --help' for the options.\n";
        err().flush();
        return kExitUsage;
    } catch (const Error& error) {
        err() << "hnstudio " << commandName << ": " << error.message() << '\n';
    } catch (const std::exception& error) {
        err() << "hnstudio " << commandName << ": " << QString::fromUtf8(error.what()) << '\n';
    }
    err().flush();
    return kExitFailure;
}

double doubleOption(const QCommandLineParser& parser, const QString& name)
{
    bool ok = false;
    const double value = parser.value(name).toDouble(&ok);
    if (!ok) {
        failUsage(QStringLiteral("--%1: '%2' is not a number").arg(name, parser.value(name)));
    }
    return value;
}

qint64 integerOption(const QCommandLineParser& parser, const QString& name)
{
    bool ok = false;
    const qint64 value = parser.value(name).toLongLong(&ok);
    if (!ok) {
        failUsage(QStringLiteral("--%1: '%2' is not a whole number").arg(name, parser.value(name)));
    }
    return value;
}

} // namespace studio::cli
