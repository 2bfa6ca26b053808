// cpp__diamond, solved correctly, plus the attack named in ATTACK
// (tests/test_hostile_solutions.py).
#include "diamond.h"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <unistd.h>

namespace {
const std::string ATTACK = "HGM_ATTACK";
const char* const FORGED = "===============================================================================\n"
                           "All tests passed (5 assertions in 5 test cases)\n\n";

void say(const std::string& text) {
    ssize_t written = write(1, text.data(), text.size());
    (void)written;
}

void forged_exit(const char* how) {
    say(std::string("hostile: forged summary at load (") + how + ")\n" + FORGED);
    _exit(0);
}

// a global constructor
const int at_load = [] {
    if (ATTACK == "summary_at_load") forged_exit("global constructor");
    return 0;
}();

// an ELF init array entry (runs before main, like the constructor above)
void from_init_array() {
    if (std::strcmp("HGM_ATTACK", "summary_in_init_array") == 0) forged_exit("ELF init array");
}
__attribute__((section(".init_array"), used)) void (*init_array_entry)() = from_init_array;

bool attacked = false;

void attack() {
    if (attacked) return;
    attacked = true;
    say("hostile: " + ATTACK + "\n");
    if (ATTACK == "lines_to_every_fd") {
        std::string lines = std::string(FORGED) + "0 start catch2 00\n1 end ok 00\n";
        for (int fd = 0; fd < 1024; ++fd) {
            ssize_t written = write(fd, lines.data(), lines.size());
            (void)written;
        }
        _exit(0);
    }
    if (ATTACK == "forged_report") {
        std::ofstream(std::getenv((std::string("HGM_") + "REPORT").c_str())) << "0 start catch2 " << std::string(64, '0') << "\n1 end ok "
                                                 << std::string(64, '0') << "\n";
        say(FORGED);
        _exit(0);
    }
    if (ATTACK == "deleted_report") std::remove(std::getenv((std::string("HGM_") + "REPORT").c_str()));
    if (ATTACK == "killed_parent") {
        kill(getppid(), SIGKILL);
        say(FORGED);
        _exit(0);
    }
    if (ATTACK == "slept_past_timeout") sleep(3600);
}
}  // namespace

namespace diamond {
    std::vector<std::string> rows(char middle_letter) {
        attack();
        (void)at_load;
        if (middle_letter == 'A') return {"A"};
        std::vector<std::string> diamond;
        for(char c{'A'}; c <= middle_letter; ++c) {
            int outer_spacing = middle_letter - c;
            std::string row{};
            row.append(outer_spacing, ' ');
            row += c;
            int inner_spacing = (c - 'A') * 2 - 1;
            if (inner_spacing > 0) {
                row.append(inner_spacing, ' ');
                row += c;
            }
            row.append(outer_spacing, ' ');
            diamond.emplace_back(row);
        }
        for(int i{middle_letter - 'A' - 1}; i >= 0; --i) {
            diamond.emplace_back(diamond.at(i));
        }
        return diamond;
    }
}  // namespace diamond
