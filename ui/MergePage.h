#pragma once

// Merge: weighted merges and stacks compared on one seed.

#include <QWidget>

namespace studio::ui {

class MergePage : public QWidget
{
    Q_OBJECT

public:
    explicit MergePage(QWidget* parent = nullptr);
};

} // namespace studio::ui
