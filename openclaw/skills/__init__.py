# -*- test-case-name: tests.test_skills -*-
"""Skills: C{SKILL.md} folders (workspace, managed, bundled, extra), their eligibility, the
prompt section and environment they give a run, and the C{skills.*} methods. docs/skills.md."""
