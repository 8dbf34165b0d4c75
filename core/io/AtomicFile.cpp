#include "core/io/AtomicFile.h"

#include "core/Error.h"

#include <QDir>
#include <QFileDevice>
#include <QFileInfo>
#include <QSaveFile>

namespace studio::io {

void writeFileAtomically(const QString& path, const std::function<void(QIODevice&)>& writeContent)
{
    QSaveFile file(path);
    if (!file.open(QIODevice::WriteOnly)) {
        throw Error(QStringLiteral("cannot write '%1': %2 (check that the folder exists and is "
                                   "writable)")
                        .arg(QDir::toNativeSeparators(path), file.errorString()));
    }

    writeContent(file);

    if (!file.commit()) {
        throw Error(QStringLiteral("cannot write '%1': %2 (is the disk full?)")
                        .arg(QDir::toNativeSeparators(path), file.errorString()));
    }
}

void writeFileAtomically(const QString& path, const QByteArray& content)
{
    writeFileAtomically(path, [&content](QIODevice& device) {
        writeAll(device, content.constData(), content.size());
    });
}

void writeAll(QIODevice& device, const char* data, qint64 size)
{
    while (size > 0) {
        const qint64 written = device.write(data, size);
        if (written <= 0) {
            const auto* file = qobject_cast<QFileDevice*>(&device);
            const QString name = file ? file->fileName() : QStringLiteral("output");
            throw Error(QStringLiteral("cannot write '%1': %2 (is the disk full?)")
                            .arg(QDir::toNativeSeparators(name), device.errorString()));
        }
        data += written;
        size -= written;
    }
}

} // namespace studio::io
