#pragma once

// Atomic file writes: the content goes to a temporary file beside the target, is flushed to
// disk, and only then renamed over the target. A crash or a full disk leaves the old file intact.

#include <QByteArray>
#include <QIODevice>
#include <QString>

#include <functional>

namespace studio::io {

// Calls `writeContent` with a device open for writing, then commits. Throws studio::Error
// naming `path` when the folder is not writable, a write fails or the commit fails.
void writeFileAtomically(const QString& path, const std::function<void(QIODevice&)>& writeContent);

void writeFileAtomically(const QString& path, const QByteArray& content);

// Writes `data` completely or throws studio::Error naming the device's file.
void writeAll(QIODevice& device, const char* data, qint64 size);

} // namespace studio::io
