#pragma once

// Runs the built hnstudio binary as a user would, for the command-line suites.

#include <QProcess>
#include <QString>
#include <QStringList>

namespace studio::test {

struct CliRun
{
    int exitCode = -1;
    QString out;
    QString err;
};

inline CliRun runHnstudio(const QStringList& arguments)
{
    QProcess process;
    process.start(QStringLiteral(HNSTUDIO_BINARY), arguments);
    process.waitForFinished(300000);
    return {process.exitStatus() == QProcess::NormalExit ? process.exitCode() : -1,
            QString::fromUtf8(process.readAllStandardOutput()),
            QString::fromUtf8(process.readAllStandardError())};
}

} // namespace studio::test
