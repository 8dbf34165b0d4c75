#pragma once

// What every subcommand shares: exit codes, usage errors, output streams and the way errors
// are reported. Subcommands throw UsageError for bad options and studio::Error for failures;
// runCommand turns both into a message on stderr and the exit status.

#include <QCommandLineParser>
#include <QString>
#include <QStringList>
#include <QTextStream>

#include <functional>

namespace studio::cli {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

struct UsageError
{
    QString message;
};

[[noreturn]] void failUsage(const QString& message);

QTextStream& out();
QTextStream& err();

// Parses `arguments` with `parser` (which must have --help added) and handles --help. Returns
// false when the help was printed and the command should stop with kExitOk.
bool parseArguments(QCommandLineParser& parser, const QStringList& arguments);

// Runs `body`, mapping UsageError to kExitUsage and studio::Error (or any exception) to
// kExitFailure, each with its message on stderr.
int runCommand(const QString& commandName, const std::function<int()>& body);

// Typed option values; failUsage names the option when the text does not parse.
double doubleOption(const QCommandLineParser& parser, const QString& name);
qint64 integerOption(const QCommandLineParser& parser, const QString& name);
// integerOption, and failUsage naming the option and the range when it falls outside
// [minimum, maximum].
qint64 integerOptionIn(const QCommandLineParser& parser, const QString& name, qint64 minimum,
                       qint64 maximum);

} // namespace studio::cli
