// Express 4, installed under the alias `express4` so the suite can host the relay on both majors.
declare module 'express4' {
  import express from 'express';
  export default express;
}
