#pragma once

// Create: a new hypernetwork from a form.

#include <QWidget>

namespace studio::ui {

class CreatePage : public QWidget
{
    Q_OBJECT

public:
    explicit CreatePage(QWidget* parent = nullptr);
};

} // namespace studio::ui
