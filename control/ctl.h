#pragma once
// `turnout ctl …`: the admin API for humans (a thin HTTP client).
//   turnout ctl [--server http://127.0.0.1:9090] [--token T] COMMAND …
//   list | get ID | status ID [--watch] | create -f FILE | patch ID -f FILE
//   test|sync|migrate|pause|resume|rollback|verify|repair|journal|delete ID
// The token also comes from $TURNOUT_TOKEN; FILE is JSON or YAML.

namespace turnout::control {

// Returns the process exit code: 0 success, 1 API error, 2 usage error.
int RunCtl(int argc, char** argv);

}  // namespace turnout::control
