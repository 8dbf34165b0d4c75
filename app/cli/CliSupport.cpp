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
    if (!parser.isSet(QStringLiteral("help")) && !parser.isSet(QStringLiteral("help-all"))) {
        return true;
    }

    // Qt names the executable in the usage line; name the subcommand ("hnstudio create").
    const QString help = parser.helpText();
    const qsizetype lineEnd = help.indexOf(QLatin1Char('\n'));
    const qsizetype options = help.indexOf(QStringLiteral(" [options]"));
    const qsizetype rest = options >= 0 && options < lineEnd ? options : lineEnd;
    out() << "Usage: " << arguments.value(0) << help.mid(rest);
    out().flush();
    return false;
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

qint64 integerOptionIn(const QCommandLineParser& parser, const QString& name, qint64 minimum,
                       qint64 maximum)
{
    const qint64 value = integerOption(parser, name);
    if (value < minimum || value > maximum) {
        failUsage(QStringLiteral("--%1: %2 is out of range; give %3 to %4")
                      .arg(name)
                      .arg(value)
                      .arg(minimum)
                      .arg(maximum));
    }
    return value;
}

} // namespace studio::cli
