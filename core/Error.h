#pragma once

// The engine's error type. Core code throws studio::Error with a message written for the user:
// it names the file, the field and, where there is one, the fix. Entry points (CLI commands,
// workers) catch it at their boundary and never let it cross a thread or the event loop.

#include <QString>

#include <stdexcept>

namespace studio {

class Error : public std::runtime_error
{
public:
    explicit Error(const QString& message);

    QString message() const { return QString::fromUtf8(what()); }
};

// Prefixes the message of an error that escaped `body` with `context` ("reading 'a.pt': ...").
// Keeps the original message, so the innermost detail (the key, the offset) is never lost.
template <typename Body> auto withContext(const QString& context, Body&& body) -> decltype(body())
{
    try {
        return body();
    } catch (const Error& error) {
        throw Error(context + QStringLiteral(": ") + error.message());
    }
}

} // namespace studio
